"""The registered image model as an MLflow pyfunc ("models from code": nothing is pickled).

`predict` takes a DataFrame whose `image` column (or first column) holds encoded image bytes
(PNG, JPEG, ...) and returns a float32 array (N, D) of embeddings. Weights travel as a
safetensors file and the architecture as the model config, so loading runs no stored code
beyond this file and the `cl_core` package copied beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from cl_core.datasets.decode import decode_images
from cl_core.models.spec import ImageModelSpec


class ImageEmbeddingModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.configure(context.model_config, load_file(context.artifacts["weights"]))

    def configure(self, meta: Mapping[str, Any], weights: Mapping[str, torch.Tensor]) -> ImageEmbeddingModel:
        """Build the embedder from the model config (an `ImageModelSpec` without the projection
        head, and optionally batch_size) and load `weights` into it; what `load_context` does
        with the logged config and safetensors file, callable without MLflow (benchmarks, tests).
        Returns self, so `ImageEmbeddingModel().configure(meta, weights)` is a ready model."""
        spec = ImageModelSpec.from_dict(meta)
        self.image_size, self.channels = spec.image_size, spec.channels
        self.batch_size = int(meta.get("batch_size", 512))
        self.embedder = spec.build()
        self.embedder.load_state_dict(weights)
        self.embedder.eval()
        return self

    def embed_tensor(self, images: torch.Tensor) -> np.ndarray:
        """uint8 or [0, 1] float images (N, C, S, S) -> float32 (N, D); for callers that decoded already."""
        with torch.inference_mode():
            return self.embedder(images).float().numpy()

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        column = "image" if "image" in model_input.columns else model_input.columns[0]
        encoded = model_input[column].tolist()
        chunks = [
            self.embed_tensor(decode_images(encoded[start : start + self.batch_size], self.image_size, self.channels))
            for start in range(0, len(encoded), self.batch_size)
        ]
        if not chunks:
            return np.zeros((0, self.embedder.embedding_dim), dtype=np.float32)
        return np.concatenate(chunks)


mlflow.models.set_model(ImageEmbeddingModel())
