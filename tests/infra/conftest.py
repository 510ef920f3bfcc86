"""What the two-node tests share: one loopback Ray cluster of two nodes (infra/ray_local_cluster.sh)
and one MLflow tracking server, each started the first time a test asks for it and stopped when
the package's tests end, and the token-auth setting of the driver. A cluster start and stop, or a
server start, costs tens of seconds on 2 cores; the tests only need one each, since every test
ends its own driver (`ray.shutdown`) and keeps its runs and models under its own names."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray

from tests.conftest import REPO, free_port
from tests.services import NO_JOB_RUNNER, pid_alive

SCRIPT = REPO / "infra" / "ray_local_cluster.sh"
BIN = REPO / ".venv" / "bin"


@dataclass(frozen=True)
class LocalCluster:
    address: str  # 127.0.0.1:<GCS port>
    pidfiles: list[Path]  # one per node, written by the script


@contextmanager
def local_ray_cluster(nodes: int, state: Path) -> Iterator[LocalCluster]:
    """A `nodes`-node cluster started by the script; on exit the script stops it, and every node
    process it started must be gone."""
    # Ray's Unix socket paths must stay under ~107 characters: a short temp dir, not tmp_path.
    temp_dir = tempfile.mkdtemp(prefix="ray-2n-", dir="/tmp")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
        "RAY_PORT": str(port), "RAY_DASHBOARD_PORT": str(free_port()), "RAY_CLIENT_PORT": str(free_port()),
        "RAY_NODE_CPUS": "2", "RAY_OBJECT_STORE_MEMORY": str(200 * 1024**2), "RAY_TEMP_DIR": temp_dir,
        "VENV_BIN": str(BIN),
    }
    pids: list[int] = []
    try:
        started = subprocess.run([str(SCRIPT), "start", str(nodes), str(state)], capture_output=True, text=True,
                                 env=env, timeout=300)
        logs = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for log in sorted(state.glob("*.log")))
        assert started.returncode == 0, f"{started.stderr}\n{started.stdout}\n{logs}"
        assert f"export RAY_ADDRESS=127.0.0.1:{port}" in started.stdout
        pidfiles = sorted(state.glob("node-*.pid"))
        pids = [int(path.read_text()) for path in pidfiles]
        yield LocalCluster(f"127.0.0.1:{port}", pidfiles)
    finally:
        stopped = subprocess.run([str(SCRIPT), "stop", str(state)], capture_output=True, text=True, env=env, timeout=180)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr
    # The script's last resort is SIGKILL, and it does not wait for the kernel to finish the job.
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(pids) == nodes and not any(pid_alive(pid) for pid in pids)  # the script stopped every node


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """The URI of an MLflow tracking server over a sqlite store in `root`."""
    port = free_port()
    command = [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    with open(root / "mlflow.log", "wb") as log:
        # Its own session: the server and the workers it forks end together with killpg.
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                  env={**os.environ, **NO_JOB_RUNNER})
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{uri}/health", timeout=5).read().strip() == b"OK":
                    break
            except OSError:
                pass
            assert server.poll() is None, (root / "mlflow.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "MLflow server did not answer /health in 120 s"
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


@pytest.fixture(scope="package")
def two_node_cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    """The package's two-node cluster (token auth on every node). A test joins it with
    `token_auth_driver` and leaves it with `ray.shutdown()`; killing one of its own actors is fine."""
    with local_ray_cluster(2, tmp_path_factory.mktemp("ray-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="package")
def tracking_server(tmp_path_factory) -> Iterator[str]:
    """The package's MLflow tracking server (sqlite, artifacts served over HTTP)."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


@pytest.fixture
def token_auth_driver():
    """This process drives the cluster with RAY_AUTH_MODE=token, as the nodes run.

    Ray copies RAY_AUTH_MODE into its C++ config when `ray` is first imported (here: at test
    collection), so setting the variable is not enough; the config is re-read, as `ray.init`
    itself does when it turns token auth on for a local cluster. A `clpipe` process started with
    the variable exported needs none of this.
    """
    from ray._raylet import Config

    if ray.is_initialized():  # an earlier module's local Ray would be reused instead of the cluster
        ray.shutdown()
    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "token"
    Config.initialize("")
    yield
    if previous is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = previous
    Config.initialize("")
