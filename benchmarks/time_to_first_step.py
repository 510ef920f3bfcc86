"""Time from `clpipe train` to the first training step when the services are already up.

Starts `infra/local_stack.sh` (MLflow server, Prefect server, Ray head on 127.0.0.1), ingests
digits, then launches `clpipe train` as a user would and reads the first step's wall-clock time
from the run's summary (`train_metrics.first_step_unix_s`, stamped by rank 0 after its first
optimizer step). Runs it `--repeats` times; the stack is stopped at the end.

    .venv/bin/python benchmarks/time_to_first_step.py [--repeats 3]

Also printed, to show where the time goes: the time until the driver calls `TorchTrainer.fit()`
(imports, the Prefect flow, dataset checks, the MLflow run), from there to the first step (Ray
Train's controller and worker group, process-group set-up), the workers' own set-up inside that
(`startup_s`: model, data shard, views), and the CLI's import time alone (a bare `python -c
"import flows.cli, prefect, mlflow, ray, torch"`).

The baseline, run against the same cluster in the same script: a bare driver (`--bare`: import
Ray Train, `ray.init`, a `TorchTrainer` with the same 2 x 1-CPU workers and an empty training
function) timed from its launch to the moment rank 0 enters that function. It is Ray Train's own
floor on this machine; the ratio says how much our pipeline adds on top of it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, table

PORTS = {"MLFLOW_PORT": "5310", "PREFECT_PORT": "4310", "RAY_PORT": "6310"}


def clpipe(*args: str, env: dict[str, str]) -> tuple[dict, float]:
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "flows.cli", *args, "--json"], capture_output=True, text=True,
                            cwd=REPO, env=env, timeout=900)
    if result.returncode != 0:
        sys.exit(f"clpipe {args[0]} failed:\n{result.stderr[-3000:]}")
    return json.loads([line for line in result.stdout.splitlines() if line.strip()][-1]), started


def _enter(config: dict) -> dict:
    import ray.train

    return {"entered_unix_s": time.time()} if ray.train.get_context().get_world_rank() == 0 else {}


def bare_trainer(storage: str) -> None:
    """The baseline driver: print when rank 0 of an empty 2-worker TorchTrainer starts running."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    result = TorchTrainer(
        _enter,
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name=f"bare-{time.time_ns()}", storage_path=storage),
    ).fit()
    print(json.dumps(result.return_value))


def bare(env: dict[str, str], storage: Path) -> float:
    launched = time.time()
    result = subprocess.run([sys.executable, __file__, "--bare", str(storage)], capture_output=True, text=True,
                            cwd=REPO, env=env, timeout=600)
    if result.returncode != 0:
        sys.exit(f"bare TorchTrainer failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["entered_unix_s"] - launched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bare", metavar="STORAGE", help=argparse.SUPPRESS)  # internal: the baseline driver
    args = parser.parse_args()
    if args.bare:
        return bare_trainer(args.bare)
    script = REPO / "infra" / "local_stack.sh"
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder) / "ws"
        base = {**os.environ, **PORTS, "VENV_BIN": str(Path(sys.executable).parent)}
        started = subprocess.run([str(script), "start", str(workspace)], capture_output=True, text=True, env=base, timeout=300)
        try:
            if started.returncode != 0:
                sys.exit(f"local stack did not start:\n{started.stderr}{started.stdout}")
            # What the script prints to export, and the credentials file it says to source.
            exported = started.stdout + (workspace / ".stack" / "credentials.env").read_text()
            env = {**base, **dict(re.findall(r"(\w+)=(\S+)", "\n".join(
                       line.removeprefix("export ") for line in exported.splitlines() if line.startswith("export ")))),
                   "CLPIPE_WORKSPACE": str(workspace)}
            time.sleep(5)  # the Ray head registers its node a moment after its GCS answers
            clpipe("ingest", "digits", "--name", "digits", env=env)
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import flows.cli, prefect, mlflow, ray, torch"], cwd=REPO, check=True)
            imports_s = time.perf_counter() - began
            rows = []
            for repeat in range(args.repeats):
                summary, launched = clpipe("train", "--dataset", "digits", "--epochs", "1", "--workers", "2", env=env)
                metrics = summary["train_metrics"]
                to_first = metrics["first_step_unix_s"] - launched
                to_fit = metrics["fit_called_unix_s"] - launched
                floor = bare(env, Path(folder) / "bare")
                rows.append((repeat + 1, f"{to_first:.1f}", f"{floor:.1f}", f"{to_first / floor:.2f}", f"{to_fit:.1f}",
                             f"{metrics['first_step_unix_s'] - metrics['fit_called_unix_s']:.1f}", f"{metrics['startup_s']:.1f}"))
                print(
                    f"run {repeat + 1}: {to_first:.1f} s from launch to the first step; bare TorchTrainer {floor:.1f} s",
                    flush=True,
                )
        finally:
            subprocess.run([str(script), "stop", str(workspace)], capture_output=True, env=base, timeout=120)
    print()
    headers = (
        "run",
        "clpipe train -> first step (s)",
        "bare TorchTrainer -> loop entered (s)",
        "ratio",
        "of which: launch -> TorchTrainer.fit() (s)",
        "fit() -> first step (s)",
        "worker set-up inside that (s)",
    )
    print(table(rows, headers))
    print(f"\nimporting flows.cli + prefect + mlflow + ray + torch alone: {imports_s:.1f} s")


if __name__ == "__main__":
    main()
