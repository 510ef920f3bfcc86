"""Scoring a registered recommender on an interactions version's test split, next to two
baselines fitted on the same data in the same run: most-popular and BPR-MF.

Protocol (`cl_core.evaluation.ranking`): every test user ranks every item; the items it has in
the seen splits (train and val: what the model and the baselines were fitted on,
`cl_core.recommender.dataset.SEEN_SPLITS`) are excluded, its test item is ranked among the
rest. recall@10/@20, NDCG@10/@20, MRR and catalogue coverage@10/@20; the champion gate reads
NDCG@10.

The model's vectors are computed through the registered pyfunc from the version's own inputs
(each user's seen history and side features, each item's features: the rows of the embedding
table, `cl_core.embeddings.interaction_rows`), so they are exactly the vectors export writes,
and a model trained on another version of the data is scored on this one fairly (ids it does
not know are embedded from their inputs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from cl_core.config import EvalConfig
from cl_core.datasets import DatasetVersion
from cl_core.datasets.sources.interactions.data import InteractionData, load_interactions
from cl_core.embeddings.interaction_rows import entity_inputs
from cl_core.evaluation.ranking import ranking_metrics
from cl_core.evaluation.recommender_baselines import BPRMF, MostPopular
from cl_core.recommender import vector_scorer
from cl_core.recommender.dataset import seen_interactions
from flows import registry

PRIMARY_METRIC = "ndcg_at_10"
SPLIT = "test"
BASELINES = ("popular", "mf")  # headline names: eval.baseline_popular.*, eval.baseline_mf.*


def entity_vectors(model: Any, dataset: DatasetVersion) -> tuple[torch.Tensor, torch.Tensor]:
    """(user vectors (U, D), item vectors (I, D)) of every user and item of `dataset`, in index
    order, through the pyfunc `model` as export calls it."""
    vectors = []
    for kind in ("users", "items"):
        _, _, inputs = entity_inputs(dataset, kind)
        vectors.append(torch.as_tensor(np.asarray(model.predict(pd.DataFrame(inputs)), dtype=np.float32)))
    return vectors[0], vectors[1]


def _pairs(data: InteractionData) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    seen, test = seen_interactions(data), data.split(SPLIT)
    if len(test) == 0:
        raise ValueError(f"dataset {data.name}@{data.version} has no {SPLIT!r} interactions to evaluate on")
    return (seen.users, seen.items), (test.users, test.items)


def model_metrics(model: Any, dataset: DatasetVersion, data: InteractionData) -> dict[str, float]:
    seen, test = _pairs(data)
    users, items = entity_vectors(model, dataset)
    return ranking_metrics(vector_scorer(users, items), len(data.users), len(data.items), seen, test)


def baseline_metrics(data: InteractionData, cfg: EvalConfig) -> dict[str, float]:
    """{"popular_<metric>", "mf_<metric>"}: the baselines fitted on the seen interactions."""
    seen, test = _pairs(data)
    num_users, num_items = len(data.users), len(data.items)
    fitted = {
        "popular": MostPopular(num_items).fit(*seen),
        "mf": BPRMF(num_users, num_items, **cfg.mf.model_dump()).fit(*seen),
    }
    baseline = {}
    for name, baseline_model in fitted.items():
        scores = ranking_metrics(baseline_model.scores, num_users, num_items, seen, test)
        baseline.update({f"{name}_{key}": value for key, value in scores.items() if key != "users"})
    return baseline


def score_recommender(model_ref: str, dataset: DatasetVersion, cfg: EvalConfig) -> dict[str, Any]:
    """The metrics of a registered recommender and of the baselines on `dataset`'s test split."""
    model, version = registry.load_model(registry.ModelRef.parse(model_ref))
    data = load_interactions(dataset)
    metrics = model_metrics(model, dataset, data)
    metrics["test_users"] = metrics.pop("users")
    return {
        "model_name": version.name,
        "model_version": str(version.version),
        "source_run_id": version.run_id,
        "dataset": {"name": dataset.name, "version": dataset.version},
        "split": SPLIT,
        "primary_metric": PRIMARY_METRIC,
        "metrics": metrics,
        "baseline": baseline_metrics(data, cfg),
    }


def primary_score(model_ref: str, dataset: DatasetVersion) -> float:
    """NDCG@10 of a registered recommender on `dataset` (the champion gate)."""
    model, _ = registry.load_model(registry.ModelRef.parse(model_ref))
    return model_metrics(model, dataset, load_interactions(dataset))[PRIMARY_METRIC]
