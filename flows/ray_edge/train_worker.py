"""The Ray Train worker loop: each worker trains on its shard, rank 0 logs and checkpoints.

`train_loop_per_worker` receives the dict `flows.ray_edge.train_launch.fit` builds: the run's
validated, frozen `PipelineConfig` itself (Ray pickles it; nothing re-validates it here) and plain
paths and ids. What is trained is a task from `cl_core.tasks`
(`cl_core.tasks.image.ImageTask` or `cl_core.tasks.text.TextTask`, which run without Ray); this
loop owns the optimizer, schedule, checkpoints, resume and MLflow logging for both.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray.train
import ray.train.torch
import torch

from cl_core import distributed
from cl_core.config import PipelineConfig
from cl_core.tasks import build_optimizer, build_task, warmup_cosine

CHECKPOINT_FILE = "state.pt"


def rng_file(rank: int) -> str:
    """Each rank's random state, merged by Ray Train into the one checkpoint folder."""
    return f"rng-rank{rank}.pt"


def _log_epoch(tracking_uri: str, run_id: str, metrics: dict[str, float], epoch: int) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    entries = [Metric(key, float(value), now, epoch) for key, value in metrics.items()]
    MlflowClient(tracking_uri).log_batch(run_id, metrics=entries)


def _logged_epochs(tracking_uri: str, run_id: str) -> set[int]:
    from mlflow.tracking import MlflowClient

    return {m.step for m in MlflowClient(tracking_uri).get_metric_history(run_id, "loss")}


def _append_epoch(path: str | None, metrics: dict[str, Any]) -> None:
    """One JSON line per finished epoch, which the driver shows as training progress (Ray Train's
    own reports reach only its controller)."""
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(metrics) + "\n")


def _inject_fault(setting: str | None, rank: int, epoch: int, resumed: bool) -> None:
    """Test-only fault injection: "RANK:EPOCH" kills that worker's process (SIGKILL, as a lost
    node would) in the middle of that epoch, on the first attempt only. It waits a moment first:
    Ray Train's controller registers a reported checkpoint asynchronously, and a worker lost
    within milliseconds of a report would restart from the checkpoint before it."""
    if not setting or resumed:
        return
    fault_rank, fault_epoch = (int(part) for part in setting.split(":"))
    if (rank, epoch) == (fault_rank, fault_epoch):
        time.sleep(3)
        print(f"fault injection: killing worker rank {rank} (pid {os.getpid()}) during epoch {epoch}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _restore_rng(folder: Path, rank: int, cfg: PipelineConfig, epoch: int) -> None:
    """Continue this rank's augmentation/dropout stream exactly; a checkpoint written before
    per-rank states existed (or with fewer ranks) reseeds deterministically instead."""
    path = folder / rng_file(rank)
    if path.is_file():
        state = torch.load(path, weights_only=True)
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"])
    else:
        torch.manual_seed(cfg.train.seed + rank + 1000 * epoch)


def _validate(state: dict[str, Any], cfg: PipelineConfig, params: dict[str, Any]) -> dict[str, float]:
    """The gate's score of this epoch's model on the validation split (`epoch_validation`)."""
    from flows.ray_edge.epoch_validation import EPOCHS_DONE, val_scores

    started = time.perf_counter()
    scores = val_scores(state, cfg, params["dataset_root"], params["dataset_name"], params["dataset_version"])
    return scores | {"val_time_s": time.perf_counter() - started, EPOCHS_DONE: state["epoch"] + 1}


def train_loop_per_worker(params: dict[str, Any]) -> dict[str, Any]:
    cfg: PipelineConfig = params["config"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.train.seed + rank)

    started = time.perf_counter()
    task = build_task(cfg, params, rank, world, device)
    batch = cfg.train.batch_per_worker
    steps_per_epoch = task.num_rows // batch
    if steps_per_epoch == 0:
        raise ValueError(f"worker {rank} holds {task.num_rows} training examples, fewer than one batch of {batch}")

    model = ray.train.torch.prepare_model(task.model)
    bare = getattr(model, "module", model)  # one worker: prepare_model does not wrap in DDP
    task.attach(model)
    loss_fn = task.loss_fn
    # The loss may own parameters (CLIP's learnable temperature); DDP does not see them, so their
    # gradients are averaged over the workers by a hook.
    for parameter in loss_fn.parameters():
        parameter.register_hook(distributed.average_across_workers)
    optimizer = build_optimizer(model, loss_fn, task.backbone, cfg.train)
    total_steps = steps_per_epoch * cfg.train.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total_steps, steps_per_epoch * cfg.train.warmup_epochs)
    )

    start_epoch, step = 0, 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / CHECKPOINT_FILE, map_location=device, weights_only=True)
            start_epoch, step = state["epoch"] + 1, state["step"]
            _restore_rng(Path(folder), rank, cfg, start_epoch)
        bare.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        task.load_extra_state(state.get("extra", {}))
    # A resumed run may have logged epochs past its last registered checkpoint (each epoch is logged
    # before its report, and Ray registers a reported checkpoint asynchronously), even with no
    # checkpoint registered at all (a driver killed right after the first epoch), or missed the
    # checkpoint's own epoch: log each epoch once. Training is seeded, so an epoch trained again
    # gives the values logged the first time.
    track = rank == 0 and bool(params.get("run_id"))
    logged = _logged_epochs(params["tracking_uri"], params["run_id"]) if track else set()
    if track and checkpoint is not None and state["epoch"] not in logged and state.get("metrics"):
        _log_epoch(params["tracking_uri"], params["run_id"], state["metrics"], state["epoch"])

    startup_s = time.perf_counter() - started
    first_step_at: float | None = None
    generator = torch.Generator()
    last: dict[str, float] = {}
    throughput: list[float] = []  # samples/s per epoch, for steady-state benchmarks
    for epoch in range(start_epoch, cfg.train.epochs):
        generator.manual_seed(cfg.train.seed * 1000 + rank * 100_003 + epoch)
        order = torch.randperm(task.num_rows, generator=generator)
        losses = []
        epoch_started = time.perf_counter()
        for index in range(steps_per_epoch):
            result = task.step(order[index * batch : (index + 1) * batch], optimizer, scheduler)
            losses.append(result["loss"])
            step += 1
            if first_step_at is None:
                first_step_at = time.time()
            if index == 0:
                _inject_fault(params.get("fault_injection"), rank, epoch, resumed=checkpoint is not None)
        elapsed = time.perf_counter() - epoch_started
        last = {
            "loss": float(np.mean(losses)),
            "lr": result["lr"],
            "samples_per_s": steps_per_epoch * cfg.train.batch_size / elapsed,
            "epoch_time_s": elapsed,
            "epoch": epoch,
        }
        throughput.append(last["samples_per_s"])
        if rank == 0:
            print(
                f"epoch {epoch + 1}/{cfg.train.epochs}: loss {last['loss']:.4f}, {last['samples_per_s']:.0f} samples/s",
                flush=True,
            )
            _append_epoch(params.get("epochs_file"), {**last, "epochs": cfg.train.epochs})
        with tempfile.TemporaryDirectory() as folder:
            torch.save(_rng_state(), Path(folder) / rng_file(rank))
            if rank == 0:
                state = {
                    "model": bare.state_dict(),
                    "loss": loss_fn.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "extra": task.extra_state(),
                    "epoch": epoch,
                    "step": step,
                    "model_meta": task.spec.to_dict(),
                }
                if params.get("validate"):  # a sweep's trial: its scheduler reads rank 0's report
                    last |= _validate(state, cfg, params)
                torch.save({**state, "metrics": {k: v for k, v in last.items() if k != "epoch"}},
                           Path(folder) / CHECKPOINT_FILE)
            # Logged before the report: a sweep's scheduler may stop this trial as soon as it
            # reads the report, and its run must hold every epoch it reported.
            if track and epoch not in logged:
                _log_epoch(params["tracking_uri"], params["run_id"], {k: v for k, v in last.items() if k != "epoch"},
                           epoch)
            ray.train.report(last, checkpoint=ray.train.Checkpoint.from_directory(folder))
    return {
        **last, "startup_s": startup_s, "steps": step, "world_size": world,
        "first_step_unix_s": first_step_at,
        "samples_per_s_by_epoch": throughput, "torch_threads": torch.get_num_threads(),
    }
