"""Training spreads over a real two-node Ray cluster: infra/ray_local_cluster.sh starts two
raylets on 127.0.0.1, an MLflow tracking server takes the metrics over HTTP, and
`flows.train_launch.fit` joins the cluster by address with STRICT_SPREAD placement, so each node
runs one Ray Train worker. Everything the test starts is stopped by pid in `finally` blocks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient
from ray.util.state import list_actors

from cl_core.config import build_config
from cl_core.datasets import DatasetStore
from flows.train_launch import fit
from tests.conftest import REPO, free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]
SCRIPT = REPO / "infra" / "ray_local_cluster.sh"
BIN = REPO / ".venv" / "bin"


@contextmanager
def local_ray_cluster(nodes: int, state: Path):
    """Yield the address of a `nodes`-node cluster started by the script; stop it on exit."""
    # Ray's Unix socket paths must stay under ~107 characters: a short temp dir, not tmp_path.
    temp_dir = tempfile.mkdtemp(prefix="ray-2n-", dir="/tmp")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
        "RAY_PORT": str(port), "RAY_DASHBOARD_PORT": str(free_port()), "RAY_CLIENT_PORT": str(free_port()),
        "RAY_NODE_CPUS": "2", "RAY_OBJECT_STORE_MEMORY": str(200 * 1024**2), "RAY_TEMP_DIR": temp_dir,
        "VENV_BIN": str(BIN),
    }
    try:
        started = subprocess.run([str(SCRIPT), "start", str(nodes), str(state)], capture_output=True, text=True,
                                 env=env, timeout=300)
        logs = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for log in sorted(state.glob("*.log")))
        assert started.returncode == 0, f"{started.stderr}\n{started.stdout}\n{logs}"
        assert f"export RAY_ADDRESS=127.0.0.1:{port}" in started.stdout
        yield f"127.0.0.1:{port}", sorted(state.glob("node-*.pid"))
    finally:
        stopped = subprocess.run([str(SCRIPT), "stop", str(state)], capture_output=True, text=True, env=env, timeout=180)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr


@contextmanager
def mlflow_server(root: Path):
    """Yield the URI of an MLflow tracking server over a sqlite store in `root`."""
    port = free_port()
    command = [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    with open(root / "mlflow.log", "wb") as log:
        # Its own session: the server and the workers it forks end together with killpg.
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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
            time.sleep(1)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


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


def test_strict_spread_training_runs_a_worker_on_each_node(tmp_path, monkeypatch, token_auth_driver):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("CLPIPE_FAULT_INJECTION", raising=False)
    store = DatasetStore(tmp_path / "datasets")
    store.ingest("digits", "digits", limit=200)
    dataset = store.resolve("digits")
    cfg = build_config({
        "data": {"name": "digits"},
        "model": {"depths": [1], "widths": [8], "proj_hidden": 16, "proj_dim": 8},
        "train": {"epochs": 2, "batch_size": 32, "workers": 2, "placement_strategy": "STRICT_SPREAD"},
    })
    storage = tmp_path / "checkpoints"

    with mlflow_server(tmp_path) as tracking_uri, local_ray_cluster(2, tmp_path / "cluster") as (address, pidfiles):
        client = MlflowClient(tracking_uri)
        experiment = client.create_experiment("two-nodes")
        run_id = client.create_run(experiment).info.run_id
        try:
            outcome = fit(cfg, dataset, tmp_path / "datasets", storage, run_id, tracking_uri,
                          ray_address=address, name="two-nodes")
            # Joined the cluster (Ray may report the machine's routable address, not 127.0.0.1).
            assert ray.get_runtime_context().gcs_address.rsplit(":", 1)[1] == address.rsplit(":", 1)[1]
            nodes = {node["NodeID"]: node["Resources"] for node in ray.nodes() if node["Alive"]}
            # The Train workers are actors; the GCS keeps finished ones with the node they ran on.
            # The address is explicit: other Ray instances on this machine defeat auto-detection.
            workers = list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker")], detail=True,
                                  raise_on_missing_output=False)
        finally:
            ray.shutdown()
        client.set_terminated(run_id)
        runs = [run.info.run_id for run in client.search_runs([experiment])]
        loss_steps = sorted(metric.step for metric in client.get_metric_history(run_id, "loss"))
        pids = [int(path.read_text()) for path in pidfiles]

    assert len(nodes) == 2
    assert sorted(name for resources in nodes.values() for name in resources if name.startswith("node_")) == ["node_0", "node_1"]
    assert len(workers) == 2, workers
    assert {worker.node_id for worker in workers} == set(nodes)
    assert outcome.final_metrics["world_size"] == 2 and outcome.final_metrics["epoch"] == 1
    assert not any(_pid_alive(pid) for pid in pids)  # the script stopped both nodes

    assert runs == [run_id]
    assert loss_steps == [0, 1]  # rank 0 logged each epoch over HTTP

    checkpoints = sorted(path for path in (storage / "two-nodes").glob("checkpoint_*") if path.is_dir())
    assert len(checkpoints) == 2  # one per epoch; num_to_keep is 2
    assert outcome.checkpoint_dir.parent == storage / "two-nodes"
    assert (outcome.checkpoint_dir / "state.pt").is_file()
    assert outcome.state["epoch"] == 1
