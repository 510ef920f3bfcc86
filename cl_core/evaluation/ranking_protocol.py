"""The recommender evaluation protocol, on an interactions version's test split, next to two
baselines fitted on the same data in the same run: most-popular and BPR-MF.

Every test user ranks every item (`cl_core.evaluation.ranking`); the items it has in the seen
splits (train and val: what the model and the baselines were fitted on,
`cl_core.recommender.dataset.SEEN_SPLITS`) are excluded, its test item is ranked among the rest.
recall@10/@20, NDCG@10/@20, MRR and catalogue coverage@10/@20; the primary metric is NDCG@10.

The model's vectors come from `embed(inputs)` over the version's own inputs (each user's seen
history and side features, each item's features: the rows of the embedding table,
`cl_core.embeddings.interaction_rows`), so they are exactly the vectors export writes, and a model
trained on another version of the data is scored on this one fairly (ids it does not know are
embedded from their inputs).

`evaluate` and `gate_score` are the entry points every protocol shares (the record's "protocol"
part, `cl_core.modalities`): they read the version's interactions themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from cl_core.config import EvalConfig, ViewsConfig
from cl_core.datasets import DatasetVersion
from cl_core.datasets.sources.interactions.data import InteractionData, load_interactions
from cl_core.embeddings.interaction_rows import entity_inputs
from cl_core.evaluation.primary import primary_metric
from cl_core.evaluation.ranking import ranking_metrics
from cl_core.evaluation.recommender_baselines import BPRMF, MostPopular
from cl_core.modalities.interactions import INTERACTIONS
from cl_core.recommender import vector_scorer
from cl_core.recommender.dataset import seen_interactions

SPLIT = "test"
BASELINES = ("popular", "mf")  # headline names: eval.baseline_popular.*, eval.baseline_mf.*

Embed = Callable[[list[dict[str, Any]]], np.ndarray]  # model inputs (one dict per entity) -> (N, D)
Pairs = tuple[np.ndarray, np.ndarray]  # (user indices, item indices)


def entity_vectors(embed: Embed, dataset: DatasetVersion) -> tuple[torch.Tensor, torch.Tensor]:
    """(user vectors (U, D), item vectors (I, D)) of every user and item of `dataset`, in index order."""
    vectors = []
    for kind in ("users", "items"):
        _, _, inputs = entity_inputs(dataset, kind)
        vectors.append(torch.as_tensor(np.asarray(embed(inputs), dtype=np.float32)))
    return vectors[0], vectors[1]


def evaluation_pairs(data: InteractionData) -> tuple[Pairs, Pairs]:
    """(seen pairs, test pairs); raises when the test split is empty."""
    seen, test = seen_interactions(data), data.split(SPLIT)
    if len(test) == 0:
        raise ValueError(f"dataset {data.name}@{data.version} has no {SPLIT!r} interactions to evaluate on")
    return (seen.users, seen.items), (test.users, test.items)


def vector_metrics(users: torch.Tensor, items: torch.Tensor, data: InteractionData) -> dict[str, float]:
    """The ranking metrics (and "users": how many test users) of dot-product scores of the vectors."""
    seen, test = evaluation_pairs(data)
    return ranking_metrics(vector_scorer(users, items), len(data.users), len(data.items), seen, test)


def baseline_metrics(data: InteractionData, cfg: EvalConfig) -> dict[str, float]:
    """{"popular_<metric>", "mf_<metric>"}: the baselines fitted on the seen interactions."""
    seen, test = evaluation_pairs(data)
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


def evaluate_recommender(embed: Embed, dataset: DatasetVersion, data: InteractionData, cfg: EvalConfig) -> dict[str, Any]:
    """{"split", "primary_metric", "metrics", "baseline"}: the model's ranking metrics (with
    "test_users") and the baselines', on `data` (the interactions of `dataset`)."""
    metrics = vector_metrics(*entity_vectors(embed, dataset), data)
    metrics["test_users"] = metrics.pop("users")
    return {
        "split": SPLIT,
        "primary_metric": primary_metric(INTERACTIONS.name, metrics),
        "metrics": metrics,
        "baseline": baseline_metrics(data, cfg),
    }


def primary_score(embed: Embed, dataset: DatasetVersion, data: InteractionData) -> float:
    """The gate's metric (NDCG@10) of `embed` on `data` (the interactions of `dataset`)."""
    return vector_metrics(*entity_vectors(embed, dataset), data)[primary_metric(INTERACTIONS.name)]


def evaluate(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig, views_cfg: ViewsConfig | None = None,
             report: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """`evaluate_recommender` on the interactions of `dataset`; no views, no steps reported."""
    return evaluate_recommender(embed, dataset, load_interactions(dataset), cfg)


def gate_score(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig) -> tuple[str, float]:
    """(metric name, value) of the promotion gate: NDCG@10 (`primary_score`)."""
    return primary_metric(INTERACTIONS.name), primary_score(embed, dataset, load_interactions(dataset))


def summary_lines(metrics: dict[str, float], baseline: dict[str, float], split: str) -> list[str]:
    """What `clpipe run` prints of an evaluation: the recommender next to its baselines."""
    return [f"  {label:<14} {metrics[key]:.4f}   most-popular {baseline[f'popular_{key}']:.4f}   "
            f"BPR-MF {baseline[f'mf_{key}']:.4f}   ({split} split)"
            for key, label in (("ndcg_at_10", "NDCG@10"), ("recall_at_20", "recall@20"), ("mrr", "MRR"))]
