"""Distributed overhead on one host: Ray Train with 2 workers x 1 thread ÷ 1 worker x 2 threads,
steady-state samples/s at the same global batch, same model, data and steps, in one Ray session.
The 1-worker run goes first and again last, so machine noise shows up as spread.

    .venv/bin/python benchmarks/distributed_overhead.py [--epochs 4]

Data: one MNIST train shard (10,000 rows, 28x28) from ../shared/data/mnist, else digits (8x8).
Steady state = median samples/s over the epochs after the first.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from cl_core.config import build_config
from cl_core.datasets import DatasetStore
from flows.ray_edge.train_launch import fit

from _common import shared_data, table


def steady(rates: list[float]) -> float:
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    mnist = shared_data("mnist")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source = "digits"
        if mnist:
            # One train shard only: a row limit over all shards could pick test rows.
            source = str(root / "mnist-train-only")
            Path(source).mkdir()
            (Path(source) / "mnist-train-0000.tar.gz").symlink_to(mnist / "mnist-train-0000.tar.gz")
        store = DatasetStore(root / "datasets")
        store.ingest(source, "bench")
        dataset = store.resolve("bench")

        def run(workers: int, threads: int, label: str) -> dict:
            cfg = build_config({
                "data": {"name": "bench", "image_size": 28 if mnist else 8},
                "model": {"stem_stride": 2 if mnist else 1},
                "views": {"flip_p": 0.0, "gray_p": 0.0},
                "train": {"epochs": args.epochs, "batch_size": args.batch_size, "workers": workers,
                          "cpus_per_worker": threads, "warmup_epochs": 1},
            })
            outcome = fit(cfg, dataset, root / "datasets", root / "checkpoints", None, "", name=label)
            metrics = outcome.final_metrics
            rate = steady(metrics["samples_per_s_by_epoch"])
            print(f"{label}: {workers} worker(s) x {metrics['torch_threads']} thread(s): {rate:.0f} samples/s "
                  f"(epochs {[round(r) for r in metrics['samples_per_s_by_epoch']]})", flush=True)
            return {"rate": rate, "threads": metrics["torch_threads"], "steps": metrics["steps"]}

        single_before = run(1, 2, "one-worker-before")
        double = run(2, 1, "two-workers")
        single_after = run(1, 2, "one-worker-after")

    rows = [
        ("1 worker x 2 threads (before)", f"{single_before['rate']:.0f}"),
        ("2 workers x 1 thread", f"{double['rate']:.0f}"),
        ("1 worker x 2 threads (after)", f"{single_after['rate']:.0f}"),
    ]
    print()
    print(table(rows, ("configuration", f"steady samples/s (global batch {args.batch_size})")))
    single = statistics.mean([single_before["rate"], single_after["rate"]])
    print(f"\n2x1 ÷ 1x2 = {double['rate'] / single:.2f} (against the mean of the two 1-worker runs; "
          f"{double['rate'] / single_before['rate']:.2f} / {double['rate'] / single_after['rate']:.2f} against each)")


if __name__ == "__main__":
    main()
