"""Quality on MNIST: linear-probe and kNN accuracy of the trained encoder on the validation split
(what any choice reads: the epochs, the config) and the test split (reported, never chosen on),
kNN top-1 with its 95 % bootstrap interval, next to raw pixels (test), with the training time,
through the real pipeline (`clpipe run`: Ray Train, MLflow, Prefect). MNIST's shards name train
and test only, so the ingest carves val from train (`data.val_fraction`, docs/steps.md).

    .venv/bin/python benchmarks/mnist_quality.py [--epochs N] [--config configs/mnist.yaml]

Needs ../shared/data/mnist (or $CLPIPE_SHARED_DATA/mnist); exits with a message otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

from mlflow import MlflowClient

from _common import REPO, shared_data, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(REPO / "configs" / "mnist.yaml"))
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args()
    mnist = shared_data("mnist")
    if mnist is None:
        sys.exit("MNIST shards not found: set CLPIPE_SHARED_DATA to the folder holding mnist/")

    with tempfile.TemporaryDirectory() as workspace:
        command = [sys.executable, "-m", "flows.cli", "run", "--config", args.config, "--source", str(mnist),
                   "--workspace", workspace, "--json"] + (["--epochs", str(args.epochs)] if args.epochs else [])
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - started
        if done.returncode:
            sys.exit(f"clpipe run failed:\n{done.stderr[-3000:]}")
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        client = MlflowClient(f"sqlite:///{workspace}/mlflow.db")
        epochs = client.get_metric_history(summary["train"]["run_id"], "epoch_time_s")
        training_s = sum(m.value for m in epochs)

    evaluated = summary["evaluate"]
    metrics, baseline = evaluated["metrics"], evaluated["baseline"]

    def knn(split: str) -> str:
        low, high = evaluated["intervals"][f"{split}.knn_top1"]
        return f"{metrics[f'{split}.knn_top1']:.4f} [{low:.3f}, {high:.3f}]"

    print(" ".join(command[1:]).replace(workspace, "WORKSPACE"))
    print(f"splits: {summary['ingest']['splits']}")
    # Compare settings (epochs, configs) by the val columns; the test columns are only reported.
    print(table([
        ("SimCLR encoder", f"{metrics['val.linear_probe']:.4f}", knn("val"), f"{metrics['test.linear_probe']:.4f}",
         knn("test")),
        ("raw pixels", "", "", f"{baseline['raw_linear_probe']:.4f}", f"{baseline['raw_knn_top1']:.4f}"),
    ], ("features", "linear probe (val)", "kNN top-1 (val)", "linear probe (test)", "kNN top-1 (test)")))
    print(f"training: {len(epochs)} epochs in {training_s:.0f} s ({training_s / 60:.1f} min) of Ray Train epochs; "
          f"whole pipeline {wall:.0f} s; final loss {summary['train']['train_metrics']['loss']:.4f}; "
          f"{summary['train']['train_metrics']['samples_per_s']:.0f} samples/s")


if __name__ == "__main__":
    main()
