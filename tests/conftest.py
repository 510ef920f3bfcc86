"""Shared test helpers: the real-data location, the `clpipe` command line, free ports and the
two-process gloo harness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.services import CliServices, free_port

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """../shared/data beside the checkout, or $CLPIPE_SHARED_DATA."""
    return Path(os.environ.get("CLPIPE_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def require_shared(subfolder: str) -> Path:
    path = shared_data_dir() / subfolder
    if not path.is_dir():
        pytest.skip(f"real data {subfolder!r} not found at {path}; set CLPIPE_SHARED_DATA to the data folder")
    return path


CLI_SERVICES = CliServices()


@pytest.fixture(scope="session", autouse=True)
def _stop_cli_services():
    """Stop the services `clpipe` started, if any, when the session ends."""
    yield
    CLI_SERVICES.stop()


def clpipe(*args: str, workspace: Path, timeout: int = 900,
           env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess:
    """Run the installed CLI in a fresh interpreter, exactly as a user would with a running Prefect
    server: the session's one. `env` adds variables, or with None removes them; an `env` that names
    PREFECT_API_URL keeps the call off the shared server."""
    command = [sys.executable, "-m", "flows.cli", *args, "--workspace", str(workspace)]
    overrides = env or {}
    # The user's own services stay out of tests unless a test passes them in `env`.
    environment = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS")}
    environment.update(CLI_SERVICES.environment(keep=set(overrides)))
    for key, value in overrides.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=environment)


def last_json(result: subprocess.CompletedProcess) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0, f"clpipe failed ({result.returncode}):\n{result.stderr[-4000:]}"
    return json.loads(lines[-1])


def _distributed_rank(rank: int, worker: Callable[[int], Any], world_size: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        results[rank] = worker(rank)
    finally:
        dist.destroy_process_group()


def run_distributed(worker: Callable[[int], Any], world_size: int = 2) -> list[Any]:
    """Run `worker(rank)` in `world_size` fresh processes joined in one gloo process group and
    return what each rank returned, by rank. `worker` must be a module-level function (spawn
    pickles it by name) and its result picklable; an exception in any rank fails the call."""
    with mp.get_context("spawn").Manager() as manager:
        results = manager.dict()
        mp.start_processes(_distributed_rank, args=(worker, world_size, free_port(), results), nprocs=world_size,
                           start_method="spawn", join=True)
        return [results[rank] for rank in range(world_size)]


@pytest.fixture(name="run_distributed")
def run_distributed_fixture() -> Callable[..., list[Any]]:
    """`run_distributed` for tests that spawn a gloo process group."""
    return run_distributed
