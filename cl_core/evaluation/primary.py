"""The promotion gate's metric per modality, defined once: its key in an evaluation's `metrics`,
its direction, and the metric it falls back to when a split cannot give it (text without gold
scores has no STS correlation: MRR@10 of its pair retrieval).

Read by the evaluation protocols (the `primary_metric` of their result), the evaluate flow's
champion gate (which compares with `beats`), and `flows.headline_metrics` (the `eval.`-prefixed
names `clpipe compare` sorts by). A new modality is one more row here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class PrimaryMetric:
    name: str  # the key in the protocol's `metrics`, e.g. "knn_top1" (logged as "eval.knn_top1")
    higher_is_better: bool = True
    fallback: str | None = None  # the key used when `metrics` has no `name`

    def choose(self, metrics: Mapping[str, float] | None = None) -> str:
        """The gate's key for these metrics: `name`, else `fallback` when `metrics` lacks `name`."""
        if metrics is None or self.name in metrics or self.fallback is None:
            return self.name
        return self.fallback

    def beats(self, challenger: float, champion: float) -> bool:
        """Whether the challenger's value is strictly better than the champion's (a tie keeps the champion)."""
        return challenger > champion if self.higher_is_better else challenger < champion


PRIMARY_METRICS: Mapping[str, PrimaryMetric] = MappingProxyType({
    "image": PrimaryMetric("knn_top1"),  # kNN top-1 accuracy on the test split
    "text": PrimaryMetric("sts_spearman", fallback="mrr_at_10"),  # STS Spearman; no gold scores: MRR@10
    "interactions": PrimaryMetric("ndcg_at_10"),  # NDCG@10 of the held-out item
})


def primary_metric(kind: str, metrics: Mapping[str, float] | None = None) -> str:
    """The gate's metric key of a dataset kind ("image", "text", "interactions"), for `metrics`
    when the choice depends on what the split gave."""
    try:
        entry = PRIMARY_METRICS[kind]
    except KeyError:
        raise ValueError(f"no primary metric for dataset kind {kind!r} (known: {sorted(PRIMARY_METRICS)})") from None
    return entry.choose(metrics)
