"""The metric names that line up as columns across runs and experiments in the MLflow runs
table and in `clpipe compare`.

On a training run:
- `eval.val.<metric>`: the evaluated model on the validation split, what every decision reads
  (the promotion gate, `clpipe compare`'s default order), e.g. `eval.val.knn_top1`;
- `eval.test.<metric>`: the same on the test split, scored once per model and dataset version and
  only reported, e.g. `eval.test.knn_top1`, `eval.test.sts_spearman`, `eval.test.ndcg_at_10`;
- `eval.<split>.<metric>.ci_low` / `.ci_high`: the 95 % bootstrap interval of each split's
  primary metric (`cl_core.evaluation.intervals`);
- `eval.<metric>`: the reported split's value again (test, else val), the name runs logged before
  validation was scored separately; kept for one release so that old charts keep drawing;
- `eval.baseline.<metric>`: images, the same scores on raw pixels (test split);
- `eval.pretrained.<metric>`: the same scores of the pretrained model before fine-tuning: the
  text encoder, or an image backbone's pooled features (`eval.pretrained.knn_top1`,
  `eval.pretrained.linear_probe`; only for models fine-tuned from pretrained weights; the
  reported split);
- `eval.baseline_popular.<metric>`, `eval.baseline_mf.<metric>`: recommenders, the most-popular
  and BPR-MF baselines on the test split (`eval.baseline_mf.ndcg_at_10`, ...);
- `train.seconds` (wall time of the Ray Train fit) and `train.samples_per_s` (mean over epochs).
Per-epoch history stays under `loss`, `lr`, `samples_per_s` (step = epoch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cl_core.evaluation.primary import PRIMARY_METRICS
from cl_core.evaluation.split_scores import GATE_SPLIT, REPORT_SPLIT, SPLITS, split_key
from cl_core.modalities.image import IMAGE

TRAIN_SECONDS = "train.seconds"
TRAIN_SAMPLES_PER_S = "train.samples_per_s"
# Evaluation keys whose baseline is prefixed like this in the evaluate flow's output.
_BASELINE_PREFIXES = {
    "raw_": "eval.baseline.", "pretrained_": "eval.pretrained.",
    "popular_": "eval.baseline_popular.", "mf_": "eval.baseline_mf.",
}
INTERVAL_ENDS = ("ci_low", "ci_high")


def eval_name(split: str, metric: str) -> str:
    """The MLflow name of `metric` on `split`: ("val", "knn_top1") -> "eval.val.knn_top1"."""
    return f"eval.{split_key(split, metric)}"


# The promotion gate's metric per modality under its MLflow name on the validation split (the
# table: cl_core.evaluation.primary.PRIMARY_METRICS), and the names it falls back to (text: MRR@10).
PRIMARY = {kind: eval_name(GATE_SPLIT, metric.name) for kind, metric in PRIMARY_METRICS.items()}
_FALLBACKS = tuple(eval_name(GATE_SPLIT, metric.fallback) for metric in PRIMARY_METRICS.values() if metric.fallback)
# Columns of `clpipe compare`, in order; a column shows when any run has it.
COLUMNS = (
    *(eval_name(split, "knn_top1") for split in SPLITS), "eval.pretrained.knn_top1", "eval.baseline.knn_top1",
    *(eval_name(split, "linear_probe") for split in SPLITS), "eval.pretrained.linear_probe", "eval.baseline.linear_probe",
    *(eval_name(split, "sts_spearman") for split in SPLITS), "eval.pretrained.sts_spearman",
    *(eval_name(split, "mrr_at_10") for split in SPLITS), "eval.pretrained.mrr_at_10",
    *(eval_name(split, "ndcg_at_10") for split in SPLITS), "eval.baseline_popular.ndcg_at_10",
    "eval.baseline_mf.ndcg_at_10", eval_name(REPORT_SPLIT, "recall_at_20"),
    TRAIN_SECONDS, TRAIN_SAMPLES_PER_S,
)
# What the test columns held before validation was scored separately: runs logged then have
# only `eval.<metric>` (the test split; text without a test split: val). `clpipe compare` shows
# it in the test column, never in a val one: nothing of an old run says what its val score was.
LEGACY = {f"eval.{name.removeprefix(f'eval.{REPORT_SPLIT}.')}": name
          for name in COLUMNS if name.startswith(f"eval.{REPORT_SPLIT}.")}


def evaluation_metrics(metrics: Mapping[str, float], baseline: Mapping[str, float],
                       intervals: Mapping[str, Sequence[float]] | None = None) -> dict[str, float]:
    """A protocol's `metrics`, `intervals` and `baseline` under their MLflow names:
    {"val.knn_top1": .9, "test.knn_top1": .8}, {"raw_knn_top1": .7}, {"test.knn_top1": [.75, .85]} ->
    {"eval.val.knn_top1": .9, "eval.test.knn_top1": .8, "eval.knn_top1": .8,
     "eval.test.knn_top1.ci_low": .75, "eval.test.knn_top1.ci_high": .85, "eval.baseline.knn_top1": .7}."""
    named = {f"eval.{key}": float(value) for key, value in metrics.items()}
    reported = REPORT_SPLIT if any(key.startswith(f"{REPORT_SPLIT}.") for key in metrics) else GATE_SPLIT
    for key, value in metrics.items():  # the pre-validation names, for one release
        if key.startswith(f"{reported}."):
            named[f"eval.{key[len(reported) + 1:]}"] = float(value)
    for key, (low, high) in (intervals or {}).items():
        named |= {f"eval.{key}.{end}": float(value) for end, value in zip(INTERVAL_ENDS, (low, high), strict=True)}
    for key, value in baseline.items():
        prefix = next((p for p in _BASELINE_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            raise ValueError(f"baseline metric {key!r} has none of the prefixes {sorted(_BASELINE_PREFIXES)}")
        named[_BASELINE_PREFIXES[prefix] + key[len(prefix):]] = float(value)
    return named


def training_metrics(seconds: float, samples_per_s_by_epoch: Sequence[float]) -> dict[str, float]:
    """Whole-run training figures; throughput is the mean of the epochs this process ran."""
    metrics = {TRAIN_SECONDS: float(seconds)}
    if samples_per_s_by_epoch:
        metrics[TRAIN_SAMPLES_PER_S] = float(sum(samples_per_s_by_epoch) / len(samples_per_s_by_epoch))
    return metrics


def primary_metric(modalities: Sequence[str], available: Sequence[str]) -> str:
    """The metric `clpipe compare` sorts by when none is given: the gate's metric of the runs'
    modality (text without gold scores: MRR@10)."""
    for modality in modalities:
        candidate = PRIMARY.get(modality)
        if candidate in available:
            return candidate
    return next((name for name in _FALLBACKS if name in available), PRIMARY[IMAGE.name])


def higher_is_better(metric: str) -> bool:
    """The direction of an MLflow metric name: a primary metric's (or its fallback's) own, on
    any split or under its pre-validation name, else higher."""
    for entry in PRIMARY_METRICS.values():
        names = {f"eval.{name}" for name in (entry.name, entry.fallback) if name}
        names |= {eval_name(split, name) for split in SPLITS for name in (entry.name, entry.fallback) if name}
        if metric in names:
            return entry.higher_is_better
    return True
