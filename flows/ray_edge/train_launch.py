"""Build and run the Ray `TorchTrainer` for one training run (the driver side)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from cl_core.config import PipelineConfig
from cl_core.datasets import DatasetVersion
from flows.prefect_edge import progress
from flows.ray_edge.cluster import ensure_ray
from flows.ray_edge.train_worker import CHECKPOINT_FILE, train_loop_per_worker


@dataclass(frozen=True)
class TrainingOutcome:
    checkpoint_dir: Path
    state: dict[str, Any]  # the final checkpoint: model state, model_meta, epoch, ...
    final_metrics: dict[str, Any]
    storage_path: Path
    name: str


def fit(
    cfg: PipelineConfig,
    dataset: DatasetVersion,
    dataset_root: Path,
    storage_path: Path,
    run_id: str | None,
    tracking_uri: str,
    ray_address: str | None = None,
    name: str | None = None,
    validate: bool = False,
    callbacks: list[Any] | None = None,
) -> TrainingOutcome:
    """Train on Ray and return the last checkpoint. Reusing `name` resumes that run's checkpoints.
    `validate`: rank 0 scores each epoch's model on the validation split and reports it
    (`epoch_validation`); `callbacks`: Ray Train `UserCallback`s (a sweep's report to Tune)."""
    called = time.time()  # wall clock, comparable with the workers' first-step stamp
    workers = cfg.train.workers
    epochs = cfg.train.epochs
    progress.report("train", 0, epochs, "epochs", "starting Ray")
    ensure_ray(ray_address, logical_cpus=int(workers * cfg.train.cpus_per_worker) + 2)
    name = name or f"{cfg.model_name}-{uuid.uuid4().hex[:8]}"
    epochs_file = storage_path / name / progress.EPOCHS_FILE
    epochs_file.parent.mkdir(parents=True, exist_ok=True)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": cfg,  # frozen: pickled to each worker as it is, not dumped and re-validated
            "dataset_root": str(dataset_root),
            "dataset_name": dataset.name,
            "dataset_version": dataset.version,
            "run_id": run_id,
            "tracking_uri": tracking_uri,
            # Test-only: "RANK:EPOCH" kills that worker after that epoch (see train_worker).
            "fault_injection": os.environ.get("CLPIPE_FAULT_INJECTION"),
            "epochs_file": str(epochs_file),
            "validate": validate,
        },
        scaling_config=ScalingConfig(
            num_workers=workers,
            use_gpu=cfg.train.gpu,
            resources_per_worker={"CPU": cfg.train.cpus_per_worker},
            placement_strategy=cfg.train.placement_strategy,
        ),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage_path),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.num_to_keep),
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            callbacks=callbacks,
        ),
    )
    progress.report("train", 0, epochs, "epochs", "starting the worker group")
    with _epochs_followed(epochs_file, epochs):
        result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training run {name} finished without a checkpoint")
    with result.checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
        checkpoint_dir = Path(result.checkpoint.path)
    metrics = {**(result.return_value or {}), "fit_called_unix_s": called}
    progress.finish("train", _epoch_note(metrics) if "loss" in metrics else "")
    return TrainingOutcome(checkpoint_dir, state, metrics, storage_path, name)


def _epoch_note(metrics: dict[str, Any]) -> str:
    return f"loss {metrics['loss']:.4f}, {metrics['samples_per_s']:.0f} samples/s"


@contextmanager
def _epochs_followed(path: Path, epochs: int) -> Iterator[None]:
    """While `fit()` runs, turn each epoch line rank 0 appends to `path` into training progress."""
    stop = threading.Event()

    def follow() -> None:
        shown = 0
        while True:
            stopping = stop.wait(0.5)
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            lines = text.split("\n")[:-1]  # the last piece is a line still being written, or empty
            for line in lines[shown:]:
                metrics = json.loads(line)
                progress.report("train", metrics["epoch"] + 1, epochs, "epochs", _epoch_note(metrics))
            shown = max(shown, len(lines))
            if stopping:
                return

    follower = threading.Thread(target=follow, name="clpipe-epochs", daemon=True)
    follower.start()
    try:
        yield
    finally:
        stop.set()
        follower.join()
