"""The Ray Train worker loop: each worker trains on its shard, rank 0 logs and checkpoints.

`train_loop_per_worker` receives a plain dict (see `flows.train_launch.worker_config`), so only
serialisable data crosses the Ray boundary. The optimisation itself is `cl_core.train_step`.
"""

from __future__ import annotations

import math
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
from cl_core.datasets import DatasetStore, decode_images
from cl_core.losses.two_view import TwoViewObjective
from cl_core.models import build_simclr
from cl_core.training_step import train_step
from cl_core.views import SimCLRViews

CHECKPOINT_FILE = "state.pt"


def load_shard(dataset_root: str, name: str, version: str, rank: int, world: int, seed: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decode this worker's fixed shard of the train split: uint8 images (N, C, S, S) and
    labels (N,), or None when any row of the shard is unlabelled.

    A seeded permutation (identical on every rank) is cut into `world` equal slices, so each
    worker decodes only its own rows and all workers run the same number of steps.
    """
    dataset = DatasetStore(Path(dataset_root)).resolve(name, version)
    table = dataset.read(split="train", columns=["id", "image", "label"])
    order = np.random.default_rng(seed).permutation(table.num_rows)
    per_worker = table.num_rows // world
    mine = np.sort(order[rank * per_worker : (rank + 1) * per_worker])
    images = table.column("image").take(mine).to_pylist()
    labels = table.column("label").take(mine)
    decoded = decode_images(images, image_size, dataset.manifest["channels"])
    return decoded, (None if labels.null_count else torch.from_numpy(labels.to_numpy().astype("int64")))


def warmup_cosine(total_steps: int, warmup_steps: int):
    """LR multiplier: linear warm-up, then cosine decay to zero (SimCLR's schedule)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _log_epoch(tracking_uri: str, run_id: str, metrics: dict[str, float], epoch: int) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    entries = [Metric(key, float(value), now, epoch) for key, value in metrics.items()]
    MlflowClient(tracking_uri).log_batch(run_id, metrics=entries)


def _logged_epochs(tracking_uri: str, run_id: str) -> set[int]:
    from mlflow.tracking import MlflowClient

    return {m.step for m in MlflowClient(tracking_uri).get_metric_history(run_id, "loss")}


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


def train_loop_per_worker(params: dict[str, Any]) -> dict[str, Any]:
    cfg = PipelineConfig.model_validate(params["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.train.seed + rank)

    started = time.perf_counter()
    images, labels = load_shard(
        params["dataset_root"], params["dataset_name"], params["dataset_version"],
        rank, world, cfg.train.seed, cfg.data.image_size,
    )
    channels = images.shape[1]
    batch = cfg.train.batch_per_worker
    steps_per_epoch = images.shape[0] // batch
    if steps_per_epoch == 0:
        raise ValueError(f"worker {rank} holds {images.shape[0]} training images, fewer than one batch of {batch}")

    model = build_simclr(
        channels, cfg.data.image_size, cfg.model.depths, cfg.model.widths,
        cfg.model.proj_hidden, cfg.model.proj_dim, cfg.model.stem_stride,
    )
    model = ray.train.torch.prepare_model(model)
    bare = getattr(model, "module", model)  # one worker: prepare_model does not wrap in DDP
    views = SimCLRViews(cfg.data.image_size, channels, **cfg.views.model_dump()).to(device)
    loss_fn = TwoViewObjective(
        cfg.loss.name, cfg.loss.temperature, cfg.loss.mask_same_label, cfg.loss.learnable_temperature
    ).to(device)
    if loss_fn.uses_labels and labels is None:
        raise ValueError(f"loss {cfg.loss.name} needs labels but worker {rank}'s shard has unlabelled rows")
    # The loss may own parameters (CLIP's learnable temperature); DDP does not see them, so their
    # gradients are averaged over the workers by a hook.
    for parameter in loss_fn.parameters():
        parameter.register_hook(distributed.average_across_workers)
    parameters = [*model.parameters(), *loss_fn.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    total_steps = steps_per_epoch * cfg.train.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total_steps, steps_per_epoch * cfg.train.warmup_epochs)
    )

    start_epoch, step = 0, 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / CHECKPOINT_FILE, map_location=device, weights_only=True)
        bare.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, step = state["epoch"] + 1, state["step"]
    # A resumed run may have logged epochs past its last registered checkpoint (Ray registers a
    # reported checkpoint asynchronously) or missed the checkpoint's own epoch: log each epoch once.
    track = rank == 0 and bool(params.get("run_id"))
    logged = _logged_epochs(params["tracking_uri"], params["run_id"]) if track and checkpoint is not None else set()
    if track and checkpoint is not None and state["epoch"] not in logged and state.get("metrics"):
        _log_epoch(params["tracking_uri"], params["run_id"], state["metrics"], state["epoch"])
        # Rank 0's augmentation stream continues exactly; the others reseed per resumed epoch.
        if rank == 0:
            torch.set_rng_state(state["rng"])
        else:
            torch.manual_seed(cfg.train.seed + rank + 1000 * start_epoch)

    startup_s = time.perf_counter() - started
    generator = torch.Generator().manual_seed(cfg.train.seed * 1000 + rank)
    last: dict[str, float] = {}
    throughput: list[float] = []  # samples/s per epoch, for steady-state benchmarks
    for epoch in range(start_epoch, cfg.train.epochs):
        generator.manual_seed(cfg.train.seed * 1000 + rank * 100_003 + epoch)
        order = torch.randperm(images.shape[0], generator=generator)
        losses = []
        epoch_started = time.perf_counter()
        for index in range(steps_per_epoch):
            rows = order[index * batch : (index + 1) * batch]
            batch_labels = labels[rows].to(device) if loss_fn.uses_labels else None
            result = train_step(
                model, views, images[rows].to(device, non_blocking=True), loss_fn, optimizer, scheduler,
                labels=batch_labels,
            )
            losses.append(result["loss"])
            step += 1
            if index == 0:
                _inject_fault(params.get("fault_injection"), rank, epoch, resumed=checkpoint is not None)
            if index == 0:
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
            print(f"epoch {epoch + 1}/{cfg.train.epochs}: loss {last['loss']:.4f}, {last['samples_per_s']:.0f} samples/s", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            saved = None
            if rank == 0:
                torch.save(
                    {
                        "model": bare.state_dict(),
                        "loss": loss_fn.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "epoch": epoch,
                        "step": step,
                        "rng": torch.get_rng_state(),
                        "metrics": {k: v for k, v in last.items() if k != "epoch"},
                        "model_meta": {
                            "channels": channels,
                            "image_size": cfg.data.image_size,
                            "depths": list(cfg.model.depths),
                            "widths": list(cfg.model.widths),
                            "stem_stride": cfg.model.stem_stride,
                            "proj_hidden": cfg.model.proj_hidden,
                            "proj_dim": cfg.model.proj_dim,
                        },
                    },
                    Path(folder) / CHECKPOINT_FILE,
                )
                saved = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(last, checkpoint=saved)
        if track and epoch not in logged:
            _log_epoch(params["tracking_uri"], params["run_id"], {k: v for k, v in last.items() if k != "epoch"}, epoch)
    return {
        **last, "startup_s": startup_s, "steps": step, "world_size": world,
        "samples_per_s_by_epoch": throughput, "torch_threads": torch.get_num_threads(),
    }
