"""How `clpipe search-start` reads /health while the service comes up, against a real HTTP server.

Serve's proxy listens before the application is deployed and answers 404 or 503 in plain text;
CI once saw `search-start` crash on that body instead of waiting (tests/flows/test_search.py runs
the whole service)."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from flows.serve_edge.service import _health


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
