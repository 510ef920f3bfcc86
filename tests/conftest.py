"""Shared test helpers: the real-data location and the `clpipe` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """../shared/data beside the checkout, or $CLPIPE_SHARED_DATA."""
    return Path(os.environ.get("CLPIPE_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def require_shared(subfolder: str) -> Path:
    path = shared_data_dir() / subfolder
    if not path.is_dir():
        pytest.skip(f"real data {subfolder!r} not found at {path}; set CLPIPE_SHARED_DATA to the data folder")
    return path


def clpipe(*args: str, workspace: Path, timeout: int = 900, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the installed CLI in a fresh interpreter, exactly as a user would."""
    command = [sys.executable, "-m", "flows.cli", *args, "--workspace", str(workspace)]
    # The user's own services stay out of tests unless a test passes them in `env`.
    environment = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS")}
    environment.update(env or {})
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=environment)


def last_json(result: subprocess.CompletedProcess) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0, f"clpipe failed ({result.returncode}):\n{result.stderr[-4000:]}"
    return json.loads(lines[-1])
