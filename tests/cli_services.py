"""One Prefect server and one Ray head for a whole test session, shared by the `clpipe`
subprocesses. Left alone, every CLI call starts its own temporary Prefect server (~20 s on 2
cores) and every training call its own local Ray (~10 s); a user's long-lived stack
(infra/local_stack.sh) is what the CLI is meant to join anyway.

Each service starts the first time a call needs it, and `stop` ends exactly the processes started
here, by process group: never a global `ray stop`, which could hit other clusters on the machine."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# What a local Ray gets for the tests' 2-worker runs: one CPU per worker, two for the Train
# controller and other tasks (flows.train_launch asks for workers * cpus_per_worker + 2).
RAY_LOGICAL_CPUS = 4
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


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


class CliServices:
    """The session's Prefect server and Ray head, started on demand."""

    def __init__(self, repo: Path, free_port) -> None:
        self._repo, self._free_port = repo, free_port
        self._root: Path | None = None
        self._processes: list[subprocess.Popen] = []
        self._prefect_api_url: str | None = None
        self._ray_address: str | None = None

    def environment(self, trains: bool, keep: set[str]) -> dict[str, str]:
        """Variables that point a CLI call at the shared services; those in `keep` the caller sets
        itself, so their service is neither started nor passed."""
        variables = {}
        if "PREFECT_API_URL" not in keep:
            variables["PREFECT_API_URL"] = self._prefect()
        if trains and not {"RAY_ADDRESS", "RAY_AUTH_MODE"} & keep:
            # Ray 2.60's token authentication: the head and every driver need RAY_AUTH_MODE=token.
            variables.update(RAY_ADDRESS=self._ray(), RAY_AUTH_MODE="token")
        return variables

    def stop(self) -> None:
        # The Ray head (started last) goes first, so no Ray worker reports a lost API server.
        for process in reversed(self._processes):
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
        self._prefect_api_url = self._ray_address = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def _folder(self) -> Path:
        # Ray's Unix socket paths must stay under ~107 characters: a short folder in /tmp.
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="clpipe-tests-", dir="/tmp"))
        return self._root

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        log = self._folder() / f"{name}.log"
        with open(log, "wb") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=self._repo,
                                       start_new_session=True)
        self._processes.append(process)
        return process, log

    def _base_environment(self) -> dict[str, str]:
        # The services must not join whatever the user's shell points at.
        environment = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
        # Ray workers import this checkout's code, as the CLI run from the repository does.
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self._repo), os.environ.get("PYTHONPATH")]))
        return environment

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

    def _ray(self) -> str:
        if self._ray_address is None:
            port = self._free_port()
            env = {**self._base_environment(), "RAY_AUTH_MODE": "token"}
            # free_port draws from the kernel's ephemeral range, outside Ray's worker ports 10002-19999.
            command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
                       "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={RAY_LOGICAL_CPUS}",
                       "--dashboard-host=127.0.0.1", f"--dashboard-port={self._free_port()}",
                       f"--ray-client-server-port={self._free_port()}", "--dashboard-agent-listen-port=0",
                       f"--temp-dir={self._folder() / 'ray'}", "--disable-usage-stats"]
            process, log = self._start("ray", command, env)
            _wait_until(lambda: _listens(port) and b"Ray runtime started" in log.read_bytes(), process, log, "Ray head")
            self._ray_address = f"127.0.0.1:{port}"
        return self._ray_address
