"""What product code relies on in Prefect and MLflow beyond their documented APIs, checked
against the installed versions so that an upgrade that changes it fails here, by name.

- MLflow's SQL registry schema: `flows/preflight.py` reads the tables and columns in
  `preflight.SQLITE_SCHEMA` directly with sqlite3 (a few ms, against about 1.5 s for importing
  mlflow and opening an `MlflowClient`), and takes a deleted version to be one whose
  `current_stage` is `preflight.DELETED_STAGE`. Neither is public. If this fails, update the
  names or switch `check_model` to `_missing_in_client`; until then a database the fast path
  cannot read is asked through `MlflowClient` (slower, same answers).
- Prefect: `SubprocessASGIServer()` (the public constructor) returns the temporary server
  Prefect's clients start, which `flows/prefect_edge/console.py` stops; `APILogHandler.flush()` sends the
  queued logs (`flows/cli/teardown.py`). Both are public; the checks below say they still do that.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from mlflow import MlflowClient

from flows import preflight
from tests.conftest import clpipe


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A registry made by the installed MLflow: `m` with v1 and v2 (v2 deleted, v1 @champion),
    `gone` whose only version is deleted."""
    root = tmp_path_factory.mktemp("dependency-apis")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", source=str(root / "nowhere"))
    client.set_registered_model_alias("m", "champion", "1")
    client.delete_model_version("m", "2")
    client.create_registered_model("gone")
    client.create_model_version("gone", source=str(root / "nowhere"))
    client.delete_model_version("gone", "1")
    return root / "mlflow.db"


def test_mlflow_s_sqlite_registry_has_the_tables_and_columns_preflight_reads(registry):
    from mlflow.entities.model_registry.model_version_stages import STAGE_DELETED_INTERNAL

    with closing(sqlite3.connect(registry)) as db:
        found = {table: {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                 for table in preflight.SQLITE_SCHEMA}
    missing = {table: sorted(set(columns) - found[table]) for table, columns in preflight.SQLITE_SCHEMA.items()
               if not set(columns) <= found[table]}
    assert not missing, (f"the installed MLflow's registry schema lacks what flows/preflight.py reads: {missing} "
                         "(update preflight.SQLITE_SCHEMA and its queries)")
    assert STAGE_DELETED_INTERNAL == preflight.DELETED_STAGE, "MLflow marks deleted model versions differently now"


@pytest.mark.parametrize("name,alias,version", [("m", None, None), ("m", "champion", None), ("m", None, "1"),
                                                ("m", None, "2"), ("m", "nosuch", None), ("gone", None, None),
                                                ("nosuch", "champion", None), ("nosuch", None, "1")])
def test_the_sqlite_fast_path_answers_as_mlflow_s_client(registry, name, alias, version):
    assert (preflight._missing_in_sqlite(registry, name, alias, version)
            == preflight._missing_in_client(f"sqlite:///{registry}", name, alias, version))


def test_a_database_the_fast_path_cannot_read_is_asked_through_the_client(tmp_path):
    database = tmp_path / "mlflow.db"
    with closing(sqlite3.connect(database)) as db, db:
        db.execute("CREATE TABLE unrelated (x)")
    with pytest.raises(sqlite3.Error):
        preflight._missing_in_sqlite(database, "nosuch", "champion", None)
    with pytest.raises(LookupError, match="Registered Model with name=nosuch not found"):
        preflight.check_model(f"sqlite:///{database}", "nosuch@champion")


class _Process:
    terminated = False

    def terminate(self) -> None:
        self.terminated = True

    def wait(self, timeout: float | None = None) -> int:
        return 0


def test_the_console_stops_the_temporary_server_prefect_s_clients_start():
    from prefect.server.api.server import SubprocessASGIServer

    from flows.prefect_edge.console import _stop_temporary_prefect_server

    server = SubprocessASGIServer()  # what prefect.client.orchestration.get_client starts
    assert SubprocessASGIServer() is server, "Prefect's temporary server is no longer one instance per port"
    if server.server_process is not None:
        pytest.skip("a temporary Prefect server runs in this test process")
    process = _Process()
    server.server_process, server.running = process, True
    try:
        _stop_temporary_prefect_server()
        assert process.terminated and server.server_process is None
        assert SubprocessASGIServer() is not server  # forgotten: a later client would start a new one
    finally:
        server.server_process = None
        SubprocessASGIServer().stop()  # forget the unstarted instance the check made


def test_a_prefect_log_handler_flushes_outside_an_event_loop():
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # no worker running: returns at once, and raises nothing


@pytest.mark.slow
@pytest.mark.integration
def test_a_command_on_prefect_s_temporary_server_stops_it_into_its_log(tmp_path):
    """End to end with no Prefect server configured: the temporary server's goodbye is in the run's
    log, not on the console, and no log is left unsent at exit."""
    result = clpipe("ingest", "digits", "--limit", "20", "--json", workspace=tmp_path / "ws", timeout=300,
                    env={"PREFECT_API_URL": None})
    assert result.returncode == 0, result.stderr[-4000:]
    (log,) = (tmp_path / "ws" / "logs").glob("*.log")
    logged = log.read_text()
    assert "Starting temporary server" in logged and "Stopping temporary server" in logged
    assert "temporary server" not in result.stdout + result.stderr
    assert "Error logging to API" not in logged + result.stdout + result.stderr
