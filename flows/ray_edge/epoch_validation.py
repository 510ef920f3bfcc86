"""Scoring a model after each epoch on the validation split, inside rank 0 of a training run: a
sweep's scheduler stops weak trials on it (`flows.ray_edge.sweep`).

The score is the promotion gate's own (`gate_score` of the modality's protocol: kNN top-1 against
the train split for images, STS Spearman for text, NDCG@10 for recommenders), of the model the
registry would load (`Pyfunc.in_memory`), so a trial's last epoch shows the value the gate reads.
For images that means the whole train split as the kNN bank, embedded after every epoch: nothing on
digits; on CIFAR-10's 45k train images not measured, but its whole evaluation (60k images embedded,
a probe fitted) takes 180 s on 2 cores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cl_core.config import PipelineConfig
from cl_core.datasets import DatasetStore
from cl_core.evaluation.split_scores import GATE_SPLIT, split_key
from cl_core.modalities import modality
from flows.mlflow_edge import pyfuncs
from flows.mlflow_edge.headline_metrics import INTERVAL_ENDS

# Reported with each epoch's scores: epochs trained so far, the clock a sweep's scheduler reads
# (Tune's own iteration count restarts when a trial does; this one continues from the checkpoint).
EPOCHS_DONE = "epochs_done"


def val_scores(training_state: dict[str, Any], cfg: PipelineConfig, dataset_root: str, dataset_name: str,
               dataset_version: str) -> dict[str, float]:
    """{"val.<metric>": value, "val.<metric>.ci_low": ..., ".ci_high": ...} of a training
    checkpoint's model (its "model" and "model_meta"): the run's per-epoch history of the gate's
    metric. The stable column `eval.val.<metric>` is the evaluated model's, logged once."""
    dataset = DatasetStore(Path(dataset_root)).resolve(dataset_name, dataset_version)
    python_model = pyfuncs.pyfunc(dataset.kind).in_memory(training_state, dataset)
    embed = pyfuncs.python_model_embedder(python_model, dataset.kind)
    score = modality(dataset.kind).part("protocol").gate_score(embed, dataset, cfg.eval)
    name = split_key(GATE_SPLIT, score.metric)
    scores = {name: score.value}
    if score.interval is not None:
        scores |= {f"{name}.{end}": float(value)
                   for end, value in zip(INTERVAL_ENDS, (score.interval.low, score.interval.high), strict=True)}
    return scores
