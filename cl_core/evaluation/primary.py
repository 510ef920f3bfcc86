"""The promotion gate's metric per modality: each record's `primary` (`cl_core.modalities`), its
key in an evaluation's `metrics`, its direction, and the metric it falls back to when a split
cannot give it.

Read by the evaluation protocols (the `primary_metric` of their result), the evaluate flow's
champion gate (which compares with `beats`), and `flows.mlflow_edge.headline_metrics` (the `eval.`-prefixed
names `clpipe compare` sorts by). A new modality's record brings its own."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cl_core.modalities import MODALITIES, PrimaryMetric

# Each record's `primary`, by modality name.
PRIMARY_METRICS: Mapping[str, PrimaryMetric] = MappingProxyType({name: record.primary for name, record in MODALITIES.items()})


def primary_metric(kind: str, metrics: Mapping[str, float] | None = None) -> str:
    """The gate's metric key of a dataset kind ("image", "text", "interactions"), for `metrics`
    when the choice depends on what the split gave."""
    try:
        entry = PRIMARY_METRICS[kind]
    except KeyError:
        raise ValueError(f"no primary metric for dataset kind {kind!r} (known: {sorted(PRIMARY_METRICS)})") from None
    return entry.choose(metrics)

__all__ = ["PRIMARY_METRICS", "PrimaryMetric", "primary_metric"]
