"""The registered text model as an MLflow pyfunc ("models from code": nothing is pickled).

`predict` takes a DataFrame whose `text` column (or first column) holds strings and returns a
float32 array (N, D) of L2-normalised sentence embeddings. The fine-tuned encoder, its
tokenizer and the projection head travel as one artifact folder (`TextEmbedder.save`), so
`models:/NAME@champion` loads on a machine that never saw the original encoder path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from cl_core.modalities.text import TEXT
from cl_core.models.text import TextEmbedder, TextTokenizer, embed_texts


class TextEmbeddingModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.configure(context.model_config, context.artifacts["encoder"])

    def configure(self, meta: Mapping[str, Any], folder: str | Path) -> TextEmbeddingModel:
        """Load the saved encoder folder with the model config's batch_size, and its max_length
        if the config gives one, else the one the folder was saved with; callable without
        MLflow (tests, benchmarks). Returns self."""
        self.batch_size = int(meta.get("batch_size", 256))
        self.base_encoder = meta.get("text_encoder")
        self.embedder = TextEmbedder.load(folder).eval()
        self.tokenizer = TextTokenizer(folder, max_length=meta.get("max_length"))
        self.max_length = self.tokenizer.max_length
        return self

    def to(self, device: str) -> TextEmbeddingModel:
        """Embed on `device` (a GPU actor of the `ray` export engine); `embed_texts` follows
        the encoder's device. Returns self."""
        self.embedder.to(device)
        return self

    def embed(self, texts: list[str]) -> np.ndarray:
        return embed_texts(self.embedder, self.tokenizer, texts, batch_size=self.batch_size)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        column = TEXT.input_column if TEXT.input_column in model_input.columns else model_input.columns[0]
        texts = model_input[column].tolist()
        bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
        if bad:
            raise ValueError(f"text input rows {bad[:10]} are not strings (got {type(texts[bad[0]]).__name__})")
        return self.embed(texts)


mlflow.models.set_model(TextEmbeddingModel())
