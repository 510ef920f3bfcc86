"""The metric names that line up as columns across runs and experiments in the MLflow runs
table and in `clpipe compare`.

On a training run:
- `eval.<metric>`: the evaluated model, e.g. `eval.knn_top1`, `eval.linear_probe` (images),
  `eval.sts_spearman`, `eval.mrr_at_10` (text);
- `eval.baseline.<metric>`: images, the same scores on raw pixels;
- `eval.pretrained.<metric>`: the same scores of the pretrained model before fine-tuning: the
  text encoder, or an image backbone's pooled features (`eval.pretrained.knn_top1`,
  `eval.pretrained.linear_probe`; only for models fine-tuned from pretrained weights);
- `eval.baseline_popular.<metric>`, `eval.baseline_mf.<metric>`: recommenders, the most-popular
  and BPR-MF baselines on the same split (`eval.ndcg_at_10`, `eval.recall_at_20`, ...);
- `train.seconds` (wall time of the Ray Train fit) and `train.samples_per_s` (mean over epochs).
Per-epoch history stays under `loss`, `lr`, `samples_per_s` (step = epoch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cl_core.evaluation.primary import PRIMARY_METRICS
from cl_core.modalities.image import IMAGE

TRAIN_SECONDS = "train.seconds"
TRAIN_SAMPLES_PER_S = "train.samples_per_s"
# Evaluation keys whose baseline is prefixed like this in the evaluate flow's output.
_BASELINE_PREFIXES = {
    "raw_": "eval.baseline.", "pretrained_": "eval.pretrained.",
    "popular_": "eval.baseline_popular.", "mf_": "eval.baseline_mf.",
}
# The promotion gate's metric per modality under its MLflow name (the table:
# cl_core.evaluation.primary.PRIMARY_METRICS), and the names it falls back to (text: eval.mrr_at_10).
PRIMARY = {kind: f"eval.{metric.name}" for kind, metric in PRIMARY_METRICS.items()}
_FALLBACKS = tuple(f"eval.{metric.fallback}" for metric in PRIMARY_METRICS.values() if metric.fallback)
# Columns of `clpipe compare`, in order; a column shows when any run has it.
COLUMNS = (
    "eval.knn_top1", "eval.pretrained.knn_top1", "eval.baseline.knn_top1",
    "eval.linear_probe", "eval.pretrained.linear_probe", "eval.baseline.linear_probe",
    "eval.sts_spearman", "eval.pretrained.sts_spearman", "eval.mrr_at_10", "eval.pretrained.mrr_at_10",
    "eval.ndcg_at_10", "eval.baseline_popular.ndcg_at_10", "eval.baseline_mf.ndcg_at_10", "eval.recall_at_20",
    TRAIN_SECONDS, TRAIN_SAMPLES_PER_S,
)


def evaluation_metrics(metrics: Mapping[str, float], baseline: Mapping[str, float]) -> dict[str, float]:
    """The evaluate flow's `metrics` and `baseline` under their MLflow names:
    {"knn_top1": .9}, {"raw_knn_top1": .8} -> {"eval.knn_top1": .9, "eval.baseline.knn_top1": .8}."""
    named = {f"eval.{key}": float(value) for key, value in metrics.items()}
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
    """The direction of an MLflow metric name: a primary metric's (or its fallback's) own, else higher."""
    for entry in PRIMARY_METRICS.values():
        if metric in (f"eval.{entry.name}", f"eval.{entry.fallback}"):
            return entry.higher_is_better
    return True
