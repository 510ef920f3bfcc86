"""Scoring a registered text model with the text protocol (`cl_core.evaluation.text_protocol`:
STS correlation against gold scores and pair retrieval on the evaluation split), next to the
pretrained encoder it was fine-tuned from. This module loads the models; the protocol scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cl_core.config import EvalConfig
from cl_core.datasets import DatasetVersion
from cl_core.evaluation import text_protocol
from flows.mlflow_edge import registry
from flows.scored import scored_result


def _embedder(model: Any) -> text_protocol.Embed:
    """texts -> (N, D) float32 through a loaded pyfunc, exactly as a registry user calls it."""
    return lambda texts: np.asarray(model.predict(pd.DataFrame({"text": texts})), dtype=np.float32)


def _pretrained(wrapped: Any) -> text_protocol.Embed | None:
    """The encoder a text model was fine-tuned from, as texts -> (N, D); None when it has none."""
    if not wrapped.base_encoder:
        return None
    from cl_core.models.text import TextEmbedder, TextTokenizer, embed_texts, resolve_text_encoder

    base_path = resolve_text_encoder(wrapped.base_encoder)
    base = TextEmbedder.from_pretrained(base_path).eval()
    tokenizer = TextTokenizer(base_path, max_length=wrapped.max_length)
    return lambda texts: embed_texts(base, tokenizer, texts)


def score_text(model_ref: str, dataset: DatasetVersion, cfg: EvalConfig) -> dict[str, Any]:
    """Metrics of a registered text model and of the pretrained encoder it started from."""
    model, version = registry.load_model(registry.ModelRef.parse(model_ref))
    evaluated = text_protocol.evaluate_text(_embedder(model), dataset, cfg, _pretrained(model.unwrap_python_model()))
    return scored_result(version, dataset, evaluated, ("split", "metrics", "baseline", "primary_metric"))


def primary_score(model_ref: str, dataset: DatasetVersion, cfg: EvalConfig) -> tuple[str, float]:
    """(metric name, value) of the promotion gate for a registered text model."""
    model, _ = registry.load_model(registry.ModelRef.parse(model_ref))
    return text_protocol.primary_score(_embedder(model), dataset, cfg)
