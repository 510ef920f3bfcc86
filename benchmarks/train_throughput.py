"""Ray Train (1 worker) training throughput ÷ a bare single-process PyTorch loop.

Same model, views, loss, optimizer, batch and data; the bare loop runs before and after the Ray
run so machine noise shows up as spread. Steady state = median samples/s over epochs after the
first; Ray's start-up (cluster, worker group, data decode) is reported separately.

    .venv/bin/python benchmarks/train_throughput.py [--rows 8000] [--epochs 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cl_core.config import build_config
from cl_core.datasets import DatasetStore
from cl_core.losses.two_view import TwoViewObjective
from cl_core.models import build_simclr
from cl_core.tasks import warmup_cosine
from cl_core.tasks.image import load_shard
from cl_core.training_step import train_step
from cl_core.views import SimCLRViews
from flows.ray_edge.train_launch import fit

from _common import shared_data, table


def bare_loop(cfg, datasets: Path, dataset, threads: int) -> list[float]:
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.train.seed)
    images, _ = load_shard(str(datasets), dataset.name, dataset.version, 0, 1, cfg.train.seed, cfg.data.image_size)
    batch = cfg.train.batch_size
    steps = images.shape[0] // batch
    model = build_simclr(images.shape[1], cfg.data.image_size, cfg.model.depths, cfg.model.widths,
                         cfg.model.proj_hidden, cfg.model.proj_dim, cfg.model.stem_stride)
    views = SimCLRViews(cfg.data.image_size, images.shape[1], **cfg.views.model_dump())
    loss_fn = TwoViewObjective(cfg.loss.name, cfg.loss.temperature)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps * cfg.train.epochs, steps))
    rates = []
    for _epoch in range(cfg.train.epochs):
        order = torch.randperm(images.shape[0])
        started = time.perf_counter()
        for index in range(steps):
            train_step(model, views, images[order[index * batch:(index + 1) * batch]], loss_fn, optimizer, scheduler)
        rates.append(steps * batch / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    mnist = shared_data("mnist")
    size = 28 if mnist else 8
    cfg_raw = {
        "data": {"name": "bench", "image_size": size},
        "model": {"stem_stride": 2 if mnist else 1},
        "views": {"flip_p": 0.0, "gray_p": 0.0},
        "train": {"epochs": args.epochs, "batch_size": 256, "workers": 1, "cpus_per_worker": args.threads, "warmup_epochs": 1},
    }
    with tempfile.TemporaryDirectory() as folder:
        source = "digits"
        if mnist:
            # One train shard (10,000 rows) only: a row limit over all shards could pick test rows.
            source = str(Path(folder) / "mnist-train-only")
            Path(source).mkdir()
            (Path(source) / "mnist-train-0000.tar.gz").symlink_to(mnist / "mnist-train-0000.tar.gz")
        cfg_raw["data"]["source"] = source
        cfg = build_config(cfg_raw)
        datasets = Path(folder) / "datasets"
        store = DatasetStore(datasets)
        store.ingest(source, "bench", limit=args.rows)
        dataset = store.resolve("bench")
        print(f"data: {source} ({dataset.num_rows('train')} train rows at {size}x{size}), "
              f"batch 256, {args.epochs} epochs, {args.threads} threads")

        bare_before = bare_loop(cfg, datasets, dataset, args.threads)
        started = time.perf_counter()
        outcome = fit(cfg, dataset, datasets, Path(folder) / "checkpoints", None, "", name="bench")
        ray_wall = time.perf_counter() - started
        bare_after = bare_loop(cfg, datasets, dataset, args.threads)

    steady = lambda rates: statistics.median(rates[1:])  # noqa: E731
    ray_rates = outcome.final_metrics["samples_per_s_by_epoch"]
    bare = [steady(bare_before), steady(bare_after)]
    ray_rate = steady(ray_rates)
    samples_per_epoch = outcome.final_metrics["steps"] // len(ray_rates) * cfg.train.batch_size
    training_s = sum(samples_per_epoch / rate for rate in ray_rates)
    print(table([
        ("bare loop (before)", f"{bare[0]:.0f}", ""),
        ("Ray Train, 1 worker", f"{ray_rate:.0f}", f"{ray_rate / statistics.mean(bare):.3f}"),
        ("bare loop (after)", f"{bare[1]:.0f}", ""),
    ], ("path", "steady samples/s", "ratio vs bare mean")))
    print(f"Ray fit() wall {ray_wall:.1f} s = {training_s:.1f} s of epochs + {ray_wall - training_s:.1f} s start-up/teardown "
          f"(of which worker data decode + model build {outcome.final_metrics['startup_s']:.1f} s); "
          f"worker torch threads {outcome.final_metrics['torch_threads']}")


if __name__ == "__main__":
    main()
