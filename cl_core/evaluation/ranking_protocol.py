"""The recommender evaluation protocol on an interactions version: the model on its val and its
test split, the baselines (most-popular and BPR-MF, fitted in the same run) on test.

The model is fitted on train (`cl_core.recommender.dataset.TRAIN_SPLITS`). Each scored split
has its own seen interactions (`seen_before`): for val, train; for test, train and val (the val
interaction happened before the test one; the model is not refitted, the val item only enters
the user's history). Every user with an interaction in the split ranks every item
(`cl_core.evaluation.ranking`); the items it has seen are excluded, its held-out item is ranked
among the rest. recall@10/@20, NDCG@10/@20, MRR and catalogue coverage@10/@20; the primary
metric is NDCG@10, with a 95 % bootstrap interval over the evaluated users
(`cl_core.evaluation.intervals`). Val decides (the promotion gate: `gate_score`; the settings
chosen in `benchmarks/ml100k_val_tuning.py`); test is reported (`cl_core.evaluation.split_scores`).

The baselines are reported numbers, not decisions: fitted once on the seen splits (train and
val, what the model's test pass sees) and scored on test.

The model's vectors come from `embed(inputs)` over the version's own inputs (each user's history
and side features, each item's features: the rows of the embedding table,
`cl_core.embeddings.interaction_rows`), so the test pass scores exactly the vectors export
writes, and a model trained on another version of the data is scored on this one fairly (ids
it does not know are embedded from their inputs). The val pass embeds users from their train
items alone.

`evaluate`, `gate_score` and `summary_lines` are the entry points every protocol shares (the
record's "protocol" part, `cl_core.modalities`): they read the version's interactions themselves."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from cl_core.config import EvalConfig, ViewsConfig
from cl_core.datasets import DatasetVersion
from cl_core.datasets.sources.interactions.data import InteractionData, load_interactions
from cl_core.embeddings.interaction_rows import entity_inputs
from cl_core.evaluation.intervals import Interval, mean_interval
from cl_core.evaluation.ranking import Ranking, rank_users
from cl_core.evaluation.recommender_baselines import BPRMF, MostPopular
from cl_core.evaluation.split_scores import GATE_SPLIT, REPORT_SPLIT, SPLITS, GateScore, metric_lines, protocol_result
from cl_core.modalities.interactions import INTERACTIONS
from cl_core.recommender import vector_scorer
from cl_core.recommender.dataset import SEEN_SPLITS, seen_before, seen_interactions

PRIMARY = INTERACTIONS.primary.name  # "ndcg_at_10"
BASELINES = ("popular", "mf")  # headline names: eval.baseline_popular.*, eval.baseline_mf.*
BASELINE_NAMES = {"popular": "most-popular", "mf": "BPR-MF"}

Embed = Callable[[list[dict[str, Any]]], np.ndarray]  # model inputs (one dict per entity) -> (N, D)
Pairs = tuple[np.ndarray, np.ndarray]  # (user indices, item indices)


def _vectors(embed: Embed, inputs: list[dict[str, Any]]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(embed(inputs), dtype=np.float32))


def item_vectors(embed: Embed, dataset: DatasetVersion) -> torch.Tensor:
    """(I, D) every item's vector, in index order."""
    return _vectors(embed, entity_inputs(dataset, "items")[2])


def user_vectors(embed: Embed, dataset: DatasetVersion, history_splits: tuple[str, ...] = SEEN_SPLITS) -> torch.Tensor:
    """(U, D) every user's vector, in index order, each with its items in `history_splits` as history."""
    return _vectors(embed, entity_inputs(dataset, "users", history_splits)[2])


def evaluation_pairs(data: InteractionData, split: str) -> tuple[Pairs, Pairs]:
    """(seen pairs, held-out pairs) of scoring `split` ("val" or "test"); raises when it is empty."""
    seen, held_out = seen_interactions(data, seen_before(split)), data.split(split)
    if len(held_out) == 0:
        hint = ("; leave_last_out keeps a val interaction for each user with 3 or more, time_cutoff needs "
                "data.interactions.split.val_from: re-ingest with one (model selection and the promotion "
                "gate read the validation split)") if split == GATE_SPLIT else ""
        raise ValueError(f"dataset {data.name}@{data.version} has no {split!r} interactions to evaluate on{hint}")
    return (seen.users, seen.items), (held_out.users, held_out.items)


def vector_ranking(users: torch.Tensor, items: torch.Tensor, data: InteractionData, split: str) -> Ranking:
    """The ranking of dot-product scores of user vectors (U, D) and item vectors (I, D) on `split`."""
    seen, held_out = evaluation_pairs(data, split)
    return rank_users(vector_scorer(users, items), len(data.users), len(data.items), seen, held_out)


def primary_interval(ranking: Ranking) -> Interval:
    """The 95 % bootstrap interval of NDCG@10 over the ranking's users."""
    return mean_interval(ranking.per_user[PRIMARY])


def baseline_rankings(data: InteractionData, cfg: EvalConfig) -> dict[str, Ranking]:
    """{"popular", "mf"}: the baselines fitted on the seen splits (train and val), ranked on test."""
    seen, held_out = evaluation_pairs(data, REPORT_SPLIT)
    num_users, num_items = len(data.users), len(data.items)
    fitted = {
        "popular": MostPopular(num_items).fit(*seen),
        "mf": BPRMF(num_users, num_items, **cfg.mf.model_dump()).fit(*seen),
    }
    return {name: rank_users(model.scores, num_users, num_items, seen, held_out) for name, model in fitted.items()}


def baseline_metrics(rankings: Mapping[str, Ranking]) -> dict[str, float]:
    """{"popular_<metric>", "mf_<metric>"} of the baselines' rankings (test)."""
    return {f"{name}_{key}": value for name, ranking in rankings.items()
            for key, value in ranking.metrics.items() if key != "users"}


def evaluate_recommender(embed: Embed, dataset: DatasetVersion, data: InteractionData, cfg: EvalConfig) -> dict[str, Any]:
    """The protocol's result (`split_scores.protocol_result`) of `embed` on `data` (the
    interactions of `dataset`): "val.<metric>" and "test.<metric>" (with "<split>.users", how
    many users were ranked), NDCG@10's interval on each split, the baselines on test, and
    `baseline_intervals` ({"popular_ndcg_at_10": [low, high], ...})."""
    items = item_vectors(embed, dataset)
    metrics, intervals = {}, {}
    for split in SPLITS:
        ranking = vector_ranking(user_vectors(embed, dataset, seen_before(split)), items, data, split)
        metrics[split] = ranking.metrics
        intervals[split] = {PRIMARY: primary_interval(ranking)}
    baselines = baseline_rankings(data, cfg)
    baseline_intervals = {f"{name}_{PRIMARY}": list(_pair(primary_interval(ranking))) for name, ranking in baselines.items()}
    return protocol_result(PRIMARY, metrics, intervals, baseline_metrics(baselines), baseline_intervals=baseline_intervals)


def _pair(interval: Interval) -> tuple[float, float]:
    return interval.low, interval.high


def evaluate(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig, views_cfg: ViewsConfig | None = None,
             report: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """`evaluate_recommender` on the interactions of `dataset`; no views, no steps reported."""
    return evaluate_recommender(embed, dataset, load_interactions(dataset), cfg)


def gate_score(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig) -> GateScore:
    """The promotion gate's score: NDCG@10 on val with its interval (users embedded from their
    train items); neither test nor the baselines are computed."""
    data = load_interactions(dataset)
    ranking = vector_ranking(user_vectors(embed, dataset, seen_before(GATE_SPLIT)), item_vectors(embed, dataset),
                             data, GATE_SPLIT)
    return GateScore(PRIMARY, ranking.metrics[PRIMARY], primary_interval(ranking))


SUMMARY_METRICS = (("ndcg_at_10", "NDCG@10"), ("recall_at_20", "recall@20"), ("mrr", "MRR"))


def summary_lines(evaluated: Mapping[str, Any]) -> list[str]:
    """What `clpipe run` prints of an evaluation (a `protocol_result`): each metric on val and on
    test (NDCG@10 with its intervals), then the baselines, which are test numbers."""
    baseline = evaluated["baseline"]
    return metric_lines(evaluated, SUMMARY_METRICS,
                        lambda key: {BASELINE_NAMES[name]: baseline.get(f"{name}_{key}") for name in BASELINES})
