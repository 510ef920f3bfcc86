"""What makes a training run readable next to others in the MLflow UI: its name, its
description (`mlflow.note.content`, shown on the run page) and the tags the runs table can show
as columns and filter on."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from cl_core.config import PipelineConfig
from cl_core.modalities import modality

NOTE_TAG = "mlflow.note.content"  # the MLflow UI shows it as the run's description
PARENT_TAG = "mlflow.parentRunId"  # the MLflow UI nests a run with it under its parent
STAGE_TAG = "clpipe.stage"
# A sweep's trial (flows/ray_edge/sweep.py): the sweep's run, the Tune trial, whether ASHA stopped it.
SWEEP_TAG = "sweep.run_id"
TRIAL_TAG = "sweep.trial_id"
STOPPED_EARLY_TAG = "sweep.stopped_early"
# MLflow's own shape of a run id: one that fits may go into a search filter (it holds no quote).
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,255}")
REPO = Path(__file__).resolve().parents[1]


def architecture(config: PipelineConfig) -> str:
    """The model in one word: the record's `architecture` (an image backbone's stages or name,
    the pretrained text encoder, the two towers' widths)."""
    return modality(config.data.modality).architecture(config)


def training_run_name(config: PipelineConfig, dataset_name: str, now: datetime | None = None) -> str:
    """`<objective>-<dataset>-<UTC time>`, e.g. ntxent-digits-20250101-120000."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{config.loss.name}-{dataset_name}-{stamp}"


def training_description(config: PipelineConfig, dataset_name: str, dataset_version: str) -> str:
    """A few Markdown lines summarising the config, for the run page's description."""
    record = modality(config.data.modality)
    train, model = config.train, config.model
    fine_tuning = []
    if record.image_backbone and model.uses_pretrained_weights:
        fine_tuning = [f"- fine-tuning: freeze_stages {model.freeze_stages}, freeze_bn {str(model.freeze_bn).lower()}, "
                       f"backbone lr x{train.backbone_lr_mult:g}, image size {config.data.image_size}"]
    return "\n".join([
        f"**{config.loss.name}** on **{dataset_name}@{dataset_version}** ({config.data.modality})",
        "",
        f"- {record.model_noun}: {architecture(config)}",
        *fine_tuning,
        f"- epochs {train.epochs}, global batch {train.batch_size}, lr {train.lr:g}, {train.workers} worker(s)",
        f"- temperature {config.loss.temperature:g}",
        f"- registered as {config.model_name}",
    ])


def training_tags(config: PipelineConfig, dataset_name: str, dataset_version: str, flow_run_id: str | None,
                  flow_run_url: str | None, git_commit: str | None) -> dict[str, str]:
    """Tags of a training run; the Prefect and git ones only when known."""
    tags = {
        STAGE_TAG: "train",
        "objective": config.loss.name,
        "modality": config.data.modality,
        modality(config.data.modality).model_tag: architecture(config),
        "dataset.name": dataset_name,
        "dataset.version": dataset_version,
        NOTE_TAG: training_description(config, dataset_name, dataset_version),
    }
    optional = {"prefect.flow_run_id": flow_run_id, "prefect.flow_run_url": flow_run_url, "git.commit": git_commit}
    tags.update({key: value for key, value in optional.items() if value})
    return tags


def git_commit(folder: Path = REPO) -> str | None:
    """The commit the code was checked out at, or None outside a git checkout (an installed wheel)."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None
