"""infra/local_stack.sh starts a real MLflow server and Prefect server on loopback, clpipe uses
them through MLFLOW_TRACKING_URI / PREFECT_API_URL, and `stop` ends exactly what it started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, clpipe, free_port, last_json
from tests.services import pid_alive

pytestmark = [pytest.mark.slow, pytest.mark.integration]
SCRIPT = REPO / "infra" / "local_stack.sh"


def stack_environment(ports: dict[str, str]) -> dict[str, str]:
    """The script's environment for a test's stack: its own ports, no Ray head (the tests use
    none), and one MLflow server process: `mlflow server` forks 4 by default, each importing
    MLflow, which on 2 cores only delays the start; the tests send one request at a time."""
    return {**os.environ, **ports, "WITH_RAY": "0", "MLFLOW_WORKERS": "1", "VENV_BIN": str(Path(sys.executable).parent)}


def _get(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url, timeout=30).read())


def test_stack_serves_clpipe_and_stops_what_it_started(tmp_path):
    workspace = tmp_path / "ws"
    ports = {"MLFLOW_PORT": str(free_port()), "PREFECT_PORT": str(free_port())}
    env = stack_environment(ports)
    started = subprocess.run([str(SCRIPT), "start", str(workspace)], capture_output=True, text=True, env=env, timeout=300)
    pids = {p.stem: int(p.read_text()) for p in (workspace / ".stack").glob("*.pid")}
    try:
        assert started.returncode == 0, started.stderr + started.stdout
        mlflow_uri = f"http://127.0.0.1:{ports['MLFLOW_PORT']}"
        prefect_api = f"http://127.0.0.1:{ports['PREFECT_PORT']}/api"
        assert f"export MLFLOW_TRACKING_URI={mlflow_uri}" in started.stdout
        assert f"export PREFECT_API_URL={prefect_api}" in started.stdout
        assert _get(f"{prefect_api}/work_pools/clpipe")["type"] == "process"  # created by the worker

        ingested = last_json(clpipe("ingest", "digits", "--name", "digits", "--limit", "50", "--json",
                                    workspace=workspace, env={"PREFECT_API_URL": prefect_api}))
        assert ingested["rows"] == 50
        request = urllib.request.Request(f"{prefect_api}/flow_runs/filter", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        runs = json.loads(urllib.request.urlopen(request, timeout=30).read())
        assert [run["state_type"] for run in runs] == ["COMPLETED"]
    finally:
        stopped = subprocess.run([str(SCRIPT), "stop", str(workspace)], capture_output=True, text=True, env=env, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert set(pids) == {"mlflow", "prefect", "worker"}
    assert not any(pid_alive(pid) for pid in pids.values())
    assert not list((workspace / ".stack").glob("*.pid"))
