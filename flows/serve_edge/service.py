"""`clpipe search-start` and `clpipe search-stop`: the search service over one table, on Ray Serve.

`search-start` checks the table, then starts `python -m flows.serve_edge.service run ...` in a
session of its own (its log: WORKSPACE/logs/search-service.log), waits until /health answers and
prints the address; WORKSPACE/search-service.json records the process, the address and the table.
The process starts a local Ray (or joins --ray-address), deploys the replicas and waits; on
SIGTERM (what `search-stop` sends) it deletes the app, shuts Serve and its Ray down and removes
the record. A bearer token is required where CLPIPE_SEARCH_TOKEN is set when starting.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from flows.workspace import Workspace

STATE_FILE = "search-service.json"
TOKEN_ENV = "CLPIPE_SEARCH_TOKEN"
DEFAULT_PORT = 8000
START_WAIT_S = 240.0  # Ray, Serve's controller and proxy, then each replica opening the snapshot
STOP_WAIT_S = 60.0


def state_path(workspace: Workspace) -> Path:
    return Path(workspace.root) / STATE_FILE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _end(pid: int) -> bool:
    """SIGTERM the service (it tears Serve and its Ray down), SIGKILL its session if it still runs
    after STOP_WAIT_S; whether it had to be killed. For a process this one did not start."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    forced = _alive(pid)
    if forced:
        os.killpg(pid, signal.SIGKILL)  # its own session: Ray's processes it started go with it
    return forced


def _end_child(child: subprocess.Popen) -> bool:
    """`_end` for the service `start` launched (a child is waited on, never polled by pid: it
    stays a zombie, and `kill(pid, 0)` finds it, until waited)."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            pass
    forced = child.poll() is None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)  # what is left of its session: a Ray it started
    child.wait()
    return forced


def read_state(workspace: Workspace) -> dict[str, Any] | None:
    """The running service's record, or None (a record whose process is gone is removed)."""
    path = state_path(workspace)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not _alive(int(state.get("pid", 0))):
        path.unlink(missing_ok=True)
        return None
    return state


def _json_or_text(body: bytes) -> dict[str, Any]:
    # Serve's proxy answers in plain text (404, 503) until the application is deployed.
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return {"text": body[:200].decode(errors="replace")}
    return parsed if isinstance(parsed, dict) else {"text": str(parsed)[:200]}


def _health(url: str, token: str | None, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{url}/health", headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _json_or_text(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _json_or_text(error.read())
    except (urllib.error.URLError, OSError):
        return 0, {}


def start(workspace: Workspace, model: str, dataset: str | None, host: str, port: int, replicas: int,
          ray_address: str | None, as_json: bool) -> int:
    from flows.search import open_search, table_of

    try:
        table = table_of(workspace, model, dataset)
        open_search(workspace, model, table.dataset_name)  # the table and its index open here, or the error says why
    except Exception as error:  # noqa: BLE001 - one line, exit 1
        print(f"clpipe search-start failed: {error}", file=sys.stderr)
        return 1
    running = read_state(workspace)
    if running:
        print(f"clpipe search-start failed: the service already runs at {running['url']} (pid {running['pid']}); "
              "`clpipe search-stop` first", file=sys.stderr)
        return 1
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            print(f"clpipe search-start failed: cannot listen on {host}:{port}: {error.strerror}", file=sys.stderr)
            return 1
    log_path = Path(workspace.root) / "logs" / "search-service.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "flows.serve_edge.service", "run", "--workspace", str(workspace.root),
               "--model", model, "--dataset", table.dataset_name, "--host", host, "--port", str(port),
               "--replicas", str(replicas), *(["--ray-address", ray_address] if ray_address else [])]
    with open(log_path, "ab") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    url = f"http://{host}:{port}"
    token = os.environ.get(TOKEN_ENV) or None
    deadline = time.monotonic() + START_WAIT_S
    status, health = 0, {}
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-5:]
            print(f"clpipe search-start failed: the service exited with status {child.returncode}; "
                  f"{log_path}: {' | '.join(tail)}", file=sys.stderr)
            _end_child(child)
            state_path(workspace).unlink(missing_ok=True)
            return 1
        status, health = _health(url, token)
        if status == 200:
            break
        time.sleep(1.0)
    else:
        forced = _end_child(child)
        state_path(workspace).unlink(missing_ok=True)
        print(f"clpipe search-start failed: {url}/health did not answer 200 within {START_WAIT_S:.0f} s (last: "
              f"{status} {health}); the service was stopped{' (killed)' if forced else ''}; see {log_path}",
              file=sys.stderr)
        return 1
    result = {"url": url, "pid": child.pid, "log": str(log_path), **health}
    if as_json:
        print(json.dumps({"command": "search-start", "workspace": str(workspace.root), **result}), flush=True)
    else:
        print(f"search service at {url} (pid {child.pid}, {replicas} replica(s)): {health['model']['name']} "
              f"v{health['model']['version']}, snapshot {health['snapshot']} of {health['dataset']['name']}@"
              f"{health['dataset']['version']}; it follows CURRENT. Stop it with `clpipe search-stop`.", flush=True)
    return 0


def stop(workspace: Workspace, as_json: bool) -> int:
    state = read_state(workspace)
    if state is None:
        print(f"clpipe search-stop: no search service runs for {workspace.root}", file=sys.stderr)
        return 1
    pid = int(state["pid"])
    forced = _end(pid)
    state_path(workspace).unlink(missing_ok=True)
    if as_json:
        print(json.dumps({"command": "search-stop", "workspace": str(workspace.root), "pid": pid, "forced": forced}))
    else:
        how = f" (killed after {STOP_WAIT_S:.0f} s)" if forced else ""
        print(f"search service at {state['url']} (pid {pid}) stopped{how}")
    return 0


def run(workspace: Workspace, model: str, dataset: str, host: str, port: int, replicas: int,
        ray_address: str | None) -> int:
    """The service's own process: deploy, record, wait for SIGTERM, tear down."""
    import ray
    from ray import serve

    from flows.ray_edge.cluster import ensure_ray
    from flows.serve_edge.deployment import APP_NAME, SearchDeployment

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    gcs_address = ensure_ray(ray_address)
    serve.start(http_options={"host": host, "port": port}, proxy_location="HeadOnly")
    app = SearchDeployment.options(num_replicas=replicas).bind(
        str(workspace.embeddings), str(workspace.datasets), model, dataset, workspace.tracking_uri,
        os.environ.get(TOKEN_ENV) or None)
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
    state_path(workspace).write_text(json.dumps({"pid": os.getpid(), "url": f"http://{host}:{port}", "model": model,
                                                 "dataset": dataset, "replicas": replicas, "ray_address": gcs_address})
                                     + "\n", encoding="utf-8")
    print(f"serving {model} on {dataset} at http://{host}:{port}", flush=True)
    stopping.wait()
    try:
        serve.delete(APP_NAME)
        serve.shutdown()
    finally:
        state_path(workspace).unlink(missing_ok=True)
        ray.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.serve_edge.service")
    parser.add_argument("action", choices=["run"])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--ray-address")
    args = parser.parse_args(argv)
    return run(Workspace.resolve(args.workspace), args.model, args.dataset, args.host, args.port, args.replicas,
               args.ray_address)


if __name__ == "__main__":
    raise SystemExit(main())
