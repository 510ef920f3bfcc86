"""Which split decides and which split reports, and the shape every protocol's result shares.

Every decision reads the validation split: the promotion gate, `clpipe compare`'s default order,
and the settings chosen in `benchmarks/`. The test split is scored once per model version and
dataset version, and only reported. A protocol therefore scores both and keys each metric by its
split ("val.knn_top1", "test.knn_top1"); the MLflow names prefix them with "eval."
(`flows.mlflow_edge.headline_metrics`).

The headline metric of each split (the modality's primary metric) comes with a 95 % bootstrap
interval over the evaluated units (`cl_core.evaluation.intervals`), kept as [low, high] so a
result stays plain JSON (Prefect stores it, `--json` prints it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cl_core.evaluation.intervals import Interval

GATE_SPLIT = "val"  # what every decision reads
REPORT_SPLIT = "test"  # scored once per model and dataset version, reported, never chosen on
SPLITS = (GATE_SPLIT, REPORT_SPLIT)


def split_key(split: str, metric: str) -> str:
    """The key of `metric` on `split` in a protocol's `metrics`: ("val", "knn_top1") -> "val.knn_top1"."""
    return f"{split}.{metric}"


def keyed(split: str, metrics: Mapping[str, float]) -> dict[str, float]:
    """`metrics` of one split under their split keys, as floats."""
    return {split_key(split, name): float(value) for name, value in metrics.items()}


def of_split(metrics: Mapping[str, float], split: str) -> dict[str, float]:
    """The metrics of one split, without the prefix: the inverse of `keyed`."""
    prefix = f"{split}."
    return {name[len(prefix):]: value for name, value in metrics.items() if name.startswith(prefix)}


def interval_of(result: Mapping[str, Any], split: str, metric: str) -> Interval | None:
    """The interval a protocol's result holds for `metric` on `split`, if any."""
    pair = result.get("intervals", {}).get(split_key(split, metric))
    return None if pair is None else Interval(float(pair[0]), float(pair[1]))


def protocol_result(primary_metric: str, metrics: Mapping[str, Mapping[str, float]],
                    intervals: Mapping[str, Mapping[str, Interval]], baseline: Mapping[str, float],
                    **extra: Any) -> dict[str, Any]:
    """The result every protocol's `evaluate` returns:
    {"splits": the splits scored, in SPLITS order; "primary_metric": the gate's metric, unprefixed;
     "metrics": {"val.<metric>": v, "test.<metric>": v, ...}; "intervals": {"val.<metric>": [low, high], ...};
     "baseline": the baselines on the test split ("raw_knn_top1", "mf_ndcg_at_10", ...); then `extra`}.
    `metrics` and `intervals` come by split: {"val": {"knn_top1": .9}, "test": {...}}."""
    unknown = set(metrics) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)} (known: {SPLITS})")
    splits = [split for split in SPLITS if split in metrics]
    return {
        "splits": splits,
        "primary_metric": primary_metric,
        "metrics": {key: value for split in splits for key, value in keyed(split, metrics[split]).items()},
        "intervals": {split_key(split, name): [interval.low, interval.high]
                      for split in splits for name, interval in intervals.get(split, {}).items()},
        "baseline": {key: float(value) for key, value in baseline.items()},
    } | extra


@dataclass(frozen=True)
class GateScore:
    """What the promotion gate compares: a model's value of the primary metric on the
    validation split, with its interval."""

    metric: str
    value: float
    interval: Interval | None = None
    split: str = GATE_SPLIT

    def __str__(self) -> str:
        around = f" {self.interval}" if self.interval is not None else ""
        return f"{self.split} {self.metric}={self.value:.4f}{around}"

    @classmethod
    def of(cls, result: Mapping[str, Any]) -> GateScore:
        """The gate's score in a protocol's result (raises when it scored no validation split)."""
        metric = result["primary_metric"]
        key = split_key(GATE_SPLIT, metric)
        if key not in result["metrics"]:
            raise ValueError(f"the evaluation scored no {GATE_SPLIT!r} {metric} (splits: {result.get('splits')}); "
                             "the promotion gate reads the validation split")
        return cls(metric, float(result["metrics"][key]), interval_of(result, GATE_SPLIT, metric))


def metric_lines(result: Mapping[str, Any], rows: Sequence[tuple[str, str]],
                 baselines: Callable[[str], Mapping[str, float | None]], baseline_split: str = REPORT_SPLIT) -> list[str]:
    """The lines `clpipe run` prints of a protocol's result, one per (metric, label) of `rows`
    that some split gave: each split's value (with its interval where it has one), in columns
    lined up across the lines, then the baselines `baselines(metric)` names ({"raw pixels": .99,
    ...}; None: left out), which are `baseline_split` numbers:

        kNN top-1      val 0.9827 [0.965, 0.994]   test 0.9896 [0.974, 1.000]   raw pixels 0.9948 (test)
        linear probe   val 0.9700                  test 0.9635                  raw pixels 0.9583 (test)
    """
    def cell(split: str, metric: str) -> str:
        value = result["metrics"].get(split_key(split, metric))
        if value is None:
            return ""
        interval = interval_of(result, split, metric)
        around = f" [{interval.low:.3f}, {interval.high:.3f}]" if interval is not None else ""
        return f"{split} {value:.4f}{around}"

    shown = [(metric, label) for metric, label in rows if any(cell(split, metric) for split in result["splits"])]
    widths = {split: max((len(cell(split, metric)) for metric, _ in shown), default=0) for split in result["splits"]}
    lines = []
    for metric, label in shown:
        columns = [cell(split, metric).ljust(widths[split]) for split in result["splits"]]
        if REPORT_SPLIT not in result["splits"]:
            columns.append(f"(no {REPORT_SPLIT} split)")
        named = [f"{name} {value:.4f}" for name, value in baselines(metric).items() if value is not None]
        if named:
            columns.append(f"{'   '.join(named)} ({baseline_split})")
        lines.append(f"  {label:<14} {'   '.join(columns)}".rstrip())
    return lines
