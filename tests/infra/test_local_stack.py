"""infra/local_stack.sh starts a real MLflow server and Prefect server on loopback that let no one
in anonymously (401) and the stack's own credentials in, clpipe uses them through
MLFLOW_TRACKING_URI / PREFECT_API_URL and the credentials file the script writes, and `stop` ends
exactly what it started."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import urllib.error
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


def stack_credentials(workspace: Path) -> dict[str, str]:
    """What `source WORKSPACE/.stack/credentials.env` exports, as the script tells the user to do;
    the file must be its owner's alone (mode 0600)."""
    path = workspace / ".stack" / "credentials.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
    names = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PREFECT_API_AUTH_STRING")
    shown = subprocess.run(["bash", "-c", 'source "$1" && printf "%s\\n" ' + " ".join(f'"${name}"' for name in names),
                            "-", str(path)], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, check=True)
    values = dict(zip(names, shown.stdout.splitlines(), strict=True))
    assert all(values.values()), f"{path} sets no value for some of {names}"
    return values


def basic_auth(user_and_password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(user_and_password.encode()).decode()}


def prefect_headers(credentials: dict[str, str] | None) -> dict[str, str]:
    """Headers for the stack's Prefect API: JSON, with its auth string when `credentials` are given."""
    auth = basic_auth(credentials["PREFECT_API_AUTH_STRING"]) if credentials else {}
    return {"Content-Type": "application/json", **auth}


def post(url: str, credentials: dict[str, str] | None) -> list[dict]:
    """POST {} to a Prefect filter endpoint of a stack."""
    request = urllib.request.Request(url, data=b"{}", method="POST", headers=prefect_headers(credentials))
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def _status(request: urllib.request.Request | str) -> int:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _get(url: str, headers: dict[str, str]) -> dict:
    return json.loads(urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30).read())


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
        assert f"source {workspace / '.stack' / 'credentials.env'}" in started.stdout
        credentials = stack_credentials(workspace)
        # No one in anonymously: MLflow's REST API, its UI and artifacts, Prefect's API; the
        # credentials open them. Only the health checks answer everyone.
        mlflow_auth = basic_auth(f"{credentials['MLFLOW_TRACKING_USERNAME']}:{credentials['MLFLOW_TRACKING_PASSWORD']}")
        search = f"{mlflow_uri}/api/2.0/mlflow/experiments/search?max_results=1"
        for url in (search, f"{mlflow_uri}/", f"{mlflow_uri}/api/2.0/mlflow-artifacts/artifacts"):
            assert _status(url) == 401, url
        assert _status(urllib.request.Request(search, headers=mlflow_auth)) == 200
        assert _status(urllib.request.Request(search, headers=basic_auth("clpipe:wrong"))) == 401
        flow_runs = f"{prefect_api}/flow_runs/filter"
        assert _status(urllib.request.Request(flow_runs, data=b"{}", method="POST", headers=prefect_headers(None))) == 401
        assert _status(f"{prefect_api}/work_pools/clpipe") == 401
        assert _get(f"{prefect_api}/work_pools/clpipe", prefect_headers(credentials))["type"] == "process"  # by the worker
        # The UI asks /ui-settings for the API it talks to: the port in use, not Prefect's 4200.
        ui = _get(f"http://127.0.0.1:{ports['PREFECT_PORT']}/ui-settings", {})
        assert (ui["api_url"], ui["auth"]) == (prefect_api, "BASIC")
        # MLflow's job runner stays off: no huey consumer among the server's processes.
        children = subprocess.run(["ps", "--ppid", str(pids["mlflow"]), "-o", "args="], capture_output=True, text=True)
        assert children.stdout.strip() and "huey" not in children.stdout, children.stdout

        ingested = last_json(clpipe("ingest", "digits", "--name", "digits", "--limit", "50", "--json",
                                    workspace=workspace, env={"PREFECT_API_URL": prefect_api, **credentials}))
        assert ingested["rows"] == 50
        assert [run["state_type"] for run in post(flow_runs, credentials)] == ["COMPLETED"]
    finally:
        stopped = subprocess.run([str(SCRIPT), "stop", str(workspace)], capture_output=True, text=True, env=env, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert set(pids) == {"mlflow", "prefect", "worker"}
    assert not any(pid_alive(pid) for pid in pids.values())
    assert not list((workspace / ".stack").glob("*.pid"))
