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
from cl_core.modalities.image import IMAGE
from cl_core.models.spec import ImageModelSpec


class ImageEmbeddingModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.configure(context.model_config, load_file(context.artifacts["weights"]))

    def configure(self, meta: Mapping[str, Any], weights: Mapping[str, torch.Tensor]) -> ImageEmbeddingModel:
        """Build the embedder from the model config (an `ImageModelSpec` without the projection
        head, and optionally batch_size) and load `weights` into it; what `load_context` does
        with the logged config and safetensors file, callable without MLflow (benchmarks, tests).
        Images are decoded at the spec's size and channels (grayscale replicated for an RGB
        backbone) and normalised by the embedder as in training.
        Returns self, so `ImageEmbeddingModel().configure(meta, weights)` is a ready model."""
        self.meta = dict(meta)
        self.spec = ImageModelSpec.from_dict(meta)
        self.image_size, self.channels = self.spec.image_size, self.spec.channels
        self.batch_size = int(meta.get("batch_size", 512))
        self.embedder = self.spec.build()
        self.embedder.load_state_dict(weights)
        # Channels-last, as in training: the same values (to float rounding), faster on CPUs too.
        self.embedder.eval().to(memory_format=torch.channels_last)
        return self

    def to(self, device: str | torch.device) -> ImageEmbeddingModel:
        """Embed on `device` (a GPU actor of the `ray` export engine); embeddings still come
        back as NumPy arrays in host memory. Returns self."""
        self.embedder.to(device)
        return self

    def pretrained(self) -> ImageEmbeddingModel | None:
        """The same model with the backbone's pretrained weights it was fine-tuned from (same
        input size, channels and normalisation), or None when it trained from scratch."""
        if not self.spec.pretrained:
            return None
        return ImageEmbeddingModel().configure(self.meta, self.spec.build(pretrained_weights=True).state_dict())

    def embed_tensor(self, images: torch.Tensor) -> np.ndarray:
        """uint8 or [0, 1] float images (N, C, S, S) -> float32 (N, D), `batch_size` images per
        forward pass; for callers that decoded already."""
        device = next(self.embedder.parameters()).device
        with torch.inference_mode():
            chunks = [
                self.embedder(images[start : start + self.batch_size].to(device)
                              .contiguous(memory_format=torch.channels_last))
                .float().cpu().numpy()
                for start in range(0, images.shape[0], self.batch_size)
            ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.embedder.embedding_dim), dtype=np.float32)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        column = IMAGE.input_column if IMAGE.input_column in model_input.columns else model_input.columns[0]
        encoded = model_input[column].tolist()
        chunks = [
            self.embed_tensor(decode_images(encoded[start : start + self.batch_size], self.image_size, self.channels))
            for start in range(0, len(encoded), self.batch_size)
        ]
        if not chunks:
            return np.zeros((0, self.embedder.embedding_dim), dtype=np.float32)
        return np.concatenate(chunks)


mlflow.models.set_model(ImageEmbeddingModel())
