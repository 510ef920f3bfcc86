"""Real services the tests start: a free loopback port, PostgreSQL databases, Prefect servers
(`prefect server start`): the one the `clpipe` calls of a session share, and the schedule tests'
own (the temporary server runs no scheduler), on SQLite or PostgreSQL; and `mlflow server` over a
workspace's store, for the browser tests.

Left alone, every CLI call starts its own temporary Prefect server (~20 s on 2 cores); a user's
long-lived stack (infra/local_stack.sh) is what the CLI is meant to join anyway. Ray is not shared:
a shared head saves only the head's start (each training run still starts its own workers), a
before/after run of the CLI tests showed no saving, and a driver that joins a cluster does not show
its workers' output, which a fault test reads."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

PREFECT = Path(sys.executable).with_name("prefect")


# An `mlflow server`'s environment without its job runner (four huey consumers for MLflow's GenAI
# jobs, which no test uses), as infra/local_stack.sh starts it.
NO_JOB_RUNNER = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid still exists (a zombie counts until it is reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_postgres() -> None:
    """Fail with what to do when PostgreSQL on 127.0.0.1:5432 does not accept connections (tests
    that need it never skip: .ci/run starts it)."""
    ready = subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True, text=True)
    if ready.returncode != 0:
        pytest.fail("PostgreSQL is not accepting connections on 127.0.0.1:5432 (" + ready.stdout.strip()
                    + "); start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`,"
                    " as .ci/run does", pytrace=False)


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty database on the local PostgreSQL (user postgres, trust auth), dropped after."""
    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    client = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["createdb", *client, name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["dropdb", *client, "--force", name], capture_output=True)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _wait_healthy(process: subprocess.Popen, url: str, log_path: Path, timeout: float, name: str) -> None:
    """Wait until `url`/health answers 200; a RuntimeError with the end of the log when the server
    exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while not _healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start; the end of {log_path}:\n{log_path.read_text()[-3000:]}")
        time.sleep(1)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Stop a process started here, with its process group (the server's own children)."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextmanager
def prefect_server(home: Path, scheduler_loop_seconds: int = 60, startup_timeout: float = 180,
                   database: str | None = None) -> Iterator[str]:
    """Yields the API URL of a server whose log lives in `home`, and its database too (SQLite), or
    in the local PostgreSQL `database`."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    # The server must not point at whatever the user's shell points at.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_UI_ENABLED": "false",
        # Schedule tests pass a few seconds: scheduled runs then appear soon after a deploy.
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": str(scheduler_loop_seconds),
    })
    if database is not None:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    log_path = home / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            _wait_healthy(process, url, log_path, startup_timeout, "prefect server")
            yield url
        finally:
            stop(process)


class CliServices:
    """The session's Prefect server for `clpipe` calls, started the first time a call needs it."""

    def __init__(self) -> None:
        self._stack: ExitStack | None = None
        self._url: str | None = None

    def environment(self, keep: set[str]) -> dict[str, str]:
        """Variables that point a CLI call at the shared server; none when the caller sets
        PREFECT_API_URL itself (`keep`), and then no server starts."""
        if "PREFECT_API_URL" in keep:
            return {}
        if self._url is None:
            self._stack = ExitStack()
            home = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="clpipe-tests-")))
            self._url = self._stack.enter_context(prefect_server(home / "prefect"))
        return {"PREFECT_API_URL": self._url}

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self._url = None, None


@contextmanager
def mlflow_ui(workspace: Path, log_path: Path, startup_timeout: float = 120) -> Iterator[str]:
    """Yields the URL of `mlflow server` over a workspace's sqlite store and artifacts, its output in `log_path`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{workspace / 'mlflow.db'}",
             "--artifacts-destination", str(workspace / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **NO_JOB_RUNNER}, start_new_session=True)
        try:
            _wait_healthy(process, url, log_path, startup_timeout, "mlflow server")
            yield url
        finally:
            stop(process)
