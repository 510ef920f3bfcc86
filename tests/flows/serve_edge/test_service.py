"""How `clpipe search-start` reads /health while the service comes up, against a real HTTP server,
and how it ends a service that did not come up, on real processes.

Serve's proxy listens before the application is deployed and answers 404 or 503 in plain text;
CI once saw `search-start` crash on that body instead of waiting (tests/flows/test_search.py runs
the whole service)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from flows.serve_edge import service
from flows.serve_edge.service import _end_child, _health


class _Answers(http.server.BaseHTTPRequestHandler):
    status = 503
    body = b"Service Unavailable"
    content_type = "text/plain"
    seen_authorization: list[str | None] = []

    def do_GET(self):  # noqa: N802 - the http.server hook's name
        type(self).seen_authorization.append(self.headers.get("Authorization"))
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _serve(server, status: int, body: bytes, content_type: str) -> str:
    _Answers.status, _Answers.body, _Answers.content_type = status, body, content_type
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


@pytest.mark.parametrize("status, body", [(503, b"Service Unavailable"), (404, b"Path '/health' not found."),
                                          (503, b"")])
def test_a_plain_text_answer_while_serve_deploys_reads_as_not_ready(server, status, body):
    got_status, got = _health(_serve(server, status, body, "text/plain"), None)
    assert got_status == status
    assert got.get("text", "") == body.decode()


def test_the_json_answer_and_the_token_are_read(server):
    answer = {"status": "ok", "snapshot": "s1"}
    _Answers.seen_authorization = []
    got_status, got = _health(_serve(server, 200, json.dumps(answer).encode(), "application/json"), "t0k")
    assert (got_status, got) == (200, answer)
    assert _Answers.seen_authorization == ["Bearer t0k"]


def test_nothing_listening_reads_as_status_zero():
    assert _health("http://127.0.0.1:9", None, timeout=2.0) == (0, {})


# A stand-in for the service: it starts a grandchild in its session (as the service starts Ray),
# prints the grandchild's pid, then waits; with IGNORE it ignores SIGTERM as a hung service would.
SERVICE = """
import signal, subprocess, sys, time
if sys.argv[1] == "IGNORE":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
HUNG = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
grandchild = subprocess.Popen([sys.executable, "-c", HUNG])
print(grandchild.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for init counts as gone
            if stat.read().split(") ")[1].startswith("Z"):
                return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("on_sigterm, forced", [("EXIT", False), ("IGNORE", True)])
def test_a_service_that_did_not_come_up_is_ended_with_what_it_started(monkeypatch, on_sigterm, forced):
    monkeypatch.setattr(service, "STOP_WAIT_S", 1.0)
    child = subprocess.Popen([sys.executable, "-c", SERVICE, on_sigterm], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    grandchild = int(child.stdout.readline())
    assert _end_child(child) is forced
    assert child.returncode is not None
    assert _gone(grandchild)
