"""`infra/local_stack.sh start --db postgres`: the Prefect and MLflow servers keep their state in
PostgreSQL databases the script creates, the worker joins the `clpipe` pool, a training run
pointed at the stack lands there (per-epoch metrics, a registered version), and `stop --drop-db`
ends the processes and drops the databases. PostgreSQL must be running: the test fails, never
skips, when it is not (.ci/run starts it). `clpipe ingest` against a stack is test_local_stack's;
here the dataset is written directly and only the training goes through the stack."""

from __future__ import annotations

import re
import subprocess

import pytest
from mlflow import MlflowClient

from cl_core.datasets import DatasetStore
from tests.conftest import clpipe, free_port, last_json
from tests.infra.test_local_stack import SCRIPT, post, stack_credentials, stack_environment
from tests.services import pid_alive, require_postgres

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EPOCHS = 2
TINY = f"""
data: {{image_size: 8}}
model: {{depths: [1], widths: [16], proj_hidden: 32, proj_dim: 16}}
views: {{flip_p: 0.0, gray_p: 0.0}}
train: {{epochs: {EPOCHS}, batch_size: 32, workers: 1}}
"""


def _sql(database: str, query: str) -> list[str]:
    result = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-Atc", query],
                            capture_output=True, text=True, check=True)
    return result.stdout.split()


def _clpipe_databases() -> set[str]:
    return set(_sql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'clpipe_%'"))


def test_postgres_stack_records_training_and_drops_its_databases(tmp_path, monkeypatch):
    require_postgres()
    before = _clpipe_databases()
    workspace = tmp_path / "ws"
    ports = {"MLFLOW_PORT": str(free_port()), "PREFECT_PORT": str(free_port())}
    env = stack_environment(ports)
    started = subprocess.run([str(SCRIPT), "start", "--db", "postgres", str(workspace)], capture_output=True,
                             text=True, env=env, timeout=400)
    pids = {p.stem: int(p.read_text()) for p in (workspace / ".stack").glob("*.pid")}
    # The databases the script names, not every new clpipe_* one: other tests may create theirs meanwhile.
    listed = re.search(r"^# databases: (\S+) (\S+) (\S+) on ", started.stdout, re.MULTILINE)
    created = set(listed.groups()) if listed else set()
    try:
        assert started.returncode == 0, started.stderr + started.stdout
        assert created <= _clpipe_databases() - before, started.stdout
        assert {name.rsplit("_", 1)[1] for name in created} == {"mlflow", "prefect", "auth"}  # auth: MLflow's users
        assert not (workspace / "mlflow.db").exists()
        tracking = f"http://127.0.0.1:{ports['MLFLOW_PORT']}"
        api = f"http://127.0.0.1:{ports['PREFECT_PORT']}/api"
        credentials = stack_credentials(workspace)  # both servers let no one in without them
        services = {"MLFLOW_TRACKING_URI": tracking, "PREFECT_API_URL": api, **credentials}
        workers = post(f"{api}/work_pools/clpipe/workers/filter", credentials)
        assert [w["name"] for w in workers] == [f"clpipe-{ports['PREFECT_PORT']}"]

        config = tmp_path / "tiny.yaml"
        config.write_text(TINY)
        # Not `clpipe ingest`: a second CLI process costs ~15 s and proves nothing the training does not.
        DatasetStore(workspace / "datasets").ingest("digits", "digits", limit=120)
        trained = last_json(clpipe("train", "--dataset", "digits", "--config", str(config), "--json",
                                   workspace=workspace, env=services))

        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            monkeypatch.setenv(name, credentials[name])  # what MlflowClient sends
        client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
        for key in ("loss", "lr", "samples_per_s"):
            history = client.get_metric_history(trained["run_id"], key)
            assert sorted(m.step for m in history) == list(range(EPOCHS)), key
        version = client.get_model_version(trained["model_name"], trained["model_version"])
        assert version.run_id == trained["run_id"] and "challenger" in version.aliases
        mlflow_db = next(name for name in created if name.endswith("_mlflow"))
        assert _sql(mlflow_db, f"SELECT version FROM model_versions WHERE run_id = '{trained['run_id']}'") == [
            trained["model_version"]]
        runs = post(f"{api}/flow_runs/filter", credentials)
        flow_run = client.get_run(trained["run_id"]).data.tags["prefect.flow_run_id"]
        assert [(run["id"], run["state_type"]) for run in runs] == [(flow_run, "COMPLETED")]
    finally:
        stopped = subprocess.run([str(SCRIPT), "stop", "--drop-db", str(workspace)], capture_output=True, text=True,
                                 env=env, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert set(pids) == {"mlflow", "prefect", "worker"}
    assert not any(pid_alive(pid) for pid in pids.values())
    assert not _clpipe_databases() & created
