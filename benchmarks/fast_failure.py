"""How long a wrong name takes to fail, next to `clpipe --help` (the interpreter and the CLI's
imports, the floor any command pays).

Builds a workspace with a small digits dataset and a registered model `digits-ntxent` (v1 at
@champion, registered directly, no training), then times in fresh processes, alternating, each
`--repeats` times: `clpipe --help`, `clpipe train --dataset nosuch`, `clpipe evaluate --model
nosuch@champion --dataset digits`, `clpipe export --model digits-ntxent@nosuch --dataset digits`
and `clpipe ingest /no/such/folder`. No Prefect server is configured, as for a new user: a check
that ran inside a flow would first start Prefect's temporary server.

    .venv/bin/python benchmarks/fast_failure.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, table

CASES = {
    "clpipe --help (baseline)": ["--help"],
    "train --dataset nosuch": ["train", "--dataset", "nosuch"],
    "evaluate --model nosuch@champion": ["evaluate", "--model", "nosuch@champion", "--dataset", "digits"],
    "export --model digits-ntxent@nosuch": ["export", "--model", "digits-ntxent@nosuch", "--dataset", "digits"],
    "ingest /no/such/folder": ["ingest", "/no/such/folder"],
}


def _workspace(root: Path) -> None:
    from mlflow import MlflowClient

    from cl_core.datasets import DatasetStore

    DatasetStore(root / "datasets").ingest("digits", "digits", limit=100)
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    client.create_registered_model("digits-ntxent")
    client.create_model_version("digits-ntxent", source=str(root / "nowhere"))
    client.set_registered_model_alias("digits-ntxent", "champion", "1")


def _time(args: list[str], workspace: Path) -> tuple[float, int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS")}
    command = [sys.executable, "-m", "flows.cli", *args]
    if args != ["--help"]:
        command += ["--workspace", str(workspace)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env={**env, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - started, done.returncode, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fast-failure-") as folder:
        workspace = Path(folder)
        _workspace(workspace)
        seconds: dict[str, list[float]] = {name: [] for name in CASES}
        outcome: dict[str, tuple[int, str]] = {}
        for _ in range(options.repeats):
            for name, args in CASES.items():
                wall, code, message = _time(args, workspace)
                seconds[name].append(wall)
                outcome[name] = (code, message)
        prefect_started = (workspace / ".prefect").exists()
    baseline = statistics.median(seconds["clpipe --help (baseline)"])
    rows = []
    for name, walls in seconds.items():
        median = statistics.median(walls)
        code, message = outcome[name]
        rows.append((name, f"{median:.2f}", f"{min(walls):.2f}", f"{median / baseline:.2f}", code, message[:90]))
    print(table(rows, ("command", "median s", "min s", "÷ --help", "exit", "message")))
    print(f"Prefect's temporary server started in the workspace: {prefect_started}")


if __name__ == "__main__":
    main()
