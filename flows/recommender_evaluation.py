"""Scoring a registered recommender with the ranking protocol
(`cl_core.evaluation.ranking_protocol`: the test split ranked against most-popular and BPR-MF,
NDCG@10 for the champion gate). This module loads the model and its data; the protocol scores,
through the registered pyfunc, so the vectors are exactly those export writes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cl_core.config import EvalConfig
from cl_core.datasets import DatasetVersion
from cl_core.datasets.sources.interactions.data import load_interactions
from cl_core.evaluation import ranking_protocol
from flows.mlflow_edge import registry
from flows.scored import scored_result


def _embedder(model: Any) -> ranking_protocol.Embed:
    """Model inputs -> (N, D) float32 through a loaded pyfunc, as export calls it."""
    return lambda inputs: np.asarray(model.predict(pd.DataFrame(inputs)), dtype=np.float32)


def score_recommender(model_ref: str, dataset: DatasetVersion, cfg: EvalConfig) -> dict[str, Any]:
    """The metrics of a registered recommender and of the baselines on `dataset`'s test split."""
    model, version = registry.load_model(registry.ModelRef.parse(model_ref))
    evaluated = ranking_protocol.evaluate_recommender(_embedder(model), dataset, load_interactions(dataset), cfg)
    return scored_result(version, dataset, evaluated)


def primary_score(model_ref: str, dataset: DatasetVersion) -> float:
    """NDCG@10 of a registered recommender on `dataset` (the champion gate)."""
    model, _ = registry.load_model(registry.ModelRef.parse(model_ref))
    return ranking_protocol.primary_score(_embedder(model), dataset, load_interactions(dataset))
