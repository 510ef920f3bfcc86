"""One Prefect server for a whole test session, shared by the `clpipe` subprocesses. Left alone,
every CLI call starts its own temporary Prefect server (~20 s on 2 cores); a user's long-lived
stack (infra/local_stack.sh) is what the CLI is meant to join anyway.

The server starts the first time a call needs it, and `stop` ends exactly the processes started
here, by process group. Ray is not shared: a shared head saves only the head's start (each training
run still starts its own workers), a before/after run of the CLI tests showed no saving, and a
driver that joins a cluster does not show its workers' output, which a fault test reads."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30


def _wait_until(ready, process: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the tests' {what} did not start; the end of {log}:\n{log.read_text()[-3000:]}")
        time.sleep(1)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


class CliServices:
    """The session's Prefect server, started on demand."""

    def __init__(self, repo: Path, free_port) -> None:
        self._repo, self._free_port = repo, free_port
        self._root: Path | None = None
        self._processes: list[subprocess.Popen] = []
        self._prefect_api_url: str | None = None

    def environment(self, keep: set[str]) -> dict[str, str]:
        """Variables that point a CLI call at the shared server; none when the caller sets
        PREFECT_API_URL itself (`keep`), and then no server starts."""
        return {} if "PREFECT_API_URL" in keep else {"PREFECT_API_URL": self._prefect()}

    def stop(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
            try:  # stragglers of the group the service started (start_new_session made it leader)
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        self._processes.clear()
        self._prefect_api_url = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def _folder(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="clpipe-tests-"))
        return self._root

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        log = self._folder() / f"{name}.log"
        with open(log, "wb") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=self._repo,
                                       start_new_session=True)
        self._processes.append(process)
        return process, log

    def _base_environment(self) -> dict[str, str]:
        # The server must not point at whatever the user's shell points at.
        return {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}

    def _prefect(self) -> str:
        if self._prefect_api_url is None:
            port = self._free_port()
            env = {**self._base_environment(), "PREFECT_HOME": str(self._folder() / "prefect"),
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
            command = [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1",
                       "--port", str(port)]
            process, log = self._start("prefect", command, env)
            url = f"http://127.0.0.1:{port}/api"
            _wait_until(lambda: _answers(f"{url}/health"), process, log, "Prefect server")
            self._prefect_api_url = url
        return self._prefect_api_url
