"""The champion/challenger decision is taken on facts, once (flows/evaluate_flow.py).

Only the registry's "not found" means "no champion yet": a tracking server that answers 500, or
refuses with 403, fails the decision and promotes nothing. A retried evaluation reuses its
`evaluate-vN` run, finds the decision recorded there before the alias moved, and finishes or
reports it instead of deciding again. Real MLflow (sqlite, and real HTTP to a failing server);
the only stand-in is the function that sends the Prefect event, so that no Prefect server is
needed: the tests count what it was asked to send.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from flows import evaluate_flow
from flows.mlflow_edge import registry


class _Announcements(list):
    """Stands in for `emit_promoted`: records each announcement; `fail` makes the next one raise,
    as a process killed between the alias move and the event would leave it unsent."""

    fail = False

    def __call__(self, *args):
        if self.fail:
            self.fail = False
            raise RuntimeError("killed before the event was sent")
        self.append(args)
        return {"sent": args}


def _scored(name: str, version: str, run_id: str, knn: float = 0.9, test_knn: float = 0.85) -> dict:
    return {"model_name": name, "model_version": version, "source_run_id": run_id,
            "dataset": {"name": "digits", "version": "20260101T000000Z"}, "modality": "image", "splits": ["val", "test"],
            "primary_metric": "knn_top1",
            "metrics": {"val.knn_top1": knn, "val.linear_probe": 0.8, "test.knn_top1": test_knn, "test.linear_probe": 0.7},
            "intervals": {"val.knn_top1": [knn - 0.02, min(knn + 0.02, 1.0)],
                          "test.knn_top1": [test_knn - 0.03, min(test_knn + 0.03, 1.0)]},
            "baseline": {"raw_knn_top1": 0.5, "raw_linear_probe": 0.4}}


@pytest.fixture(scope="module")
def registry_db(tmp_path_factory):
    """One sqlite tracking store for the module (creating its tables takes seconds)."""
    root = tmp_path_factory.mktemp("promotion")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    experiment = MlflowClient(uri).create_experiment("promotion", artifact_location=(root / "artifacts").as_uri())
    return {"uri": uri, "db": root / "mlflow.db", "root": root, "experiment": experiment}


@pytest.fixture
def store(registry_db, request):
    """A registered model of the test's own with v1 (no alias), registered from a training run
    with a loss."""
    # A parametrized test's cases differ at the end of their names: the digest tells them apart.
    name = f"promo-{request.node.name[:40]}-{hashlib.sha1(request.node.name.encode()).hexdigest()[:8]}"
    mlflow.set_tracking_uri(registry_db["uri"])
    client = MlflowClient()
    training = client.create_run(registry_db["experiment"], run_name="train")
    client.log_metric(training.info.run_id, "loss", 1.0, step=0)
    client.set_terminated(training.info.run_id)
    client.create_registered_model(name)
    client.create_model_version(name, source=str(registry_db["root"] / "nowhere"), run_id=training.info.run_id)
    yield registry_db | {"client": client, "run_id": training.info.run_id, "model": name}
    mlflow.set_tracking_uri(None)


def _evaluation_runs(store) -> list:
    return store["client"].search_runs([store["experiment"]], f"tags.`mlflow.parentRunId` = '{store['run_id']}'")


def test_a_retried_evaluation_reuses_its_run_and_decides_once(store):
    client, model, scored = store["client"], store["model"], _scored(store["model"], "1", store["run_id"])
    first = evaluate_flow.record_evaluation(scored)
    assert evaluate_flow.record_evaluation(scored) == first  # the retry finds the run by its key
    assert [run.info.run_name for run in _evaluation_runs(store)] == ["evaluate-v1"]
    # Both splits under their own names, the primary metric's intervals, the old name as test's alias.
    logged = client.get_run(store["run_id"]).data
    assert {key: logged.metrics[key] for key in ("eval.val.knn_top1", "eval.test.knn_top1", "eval.knn_top1",
                                                 "eval.val.knn_top1.ci_low", "eval.test.knn_top1.ci_high")} == {
        "eval.val.knn_top1": 0.9, "eval.test.knn_top1": 0.85, "eval.knn_top1": 0.85,
        "eval.val.knn_top1.ci_low": pytest.approx(0.88), "eval.test.knn_top1.ci_high": pytest.approx(0.88)}
    assert logged.tags["eval.dataset"] == "digits@20260101T000000Z:val+test"

    announced = _Announcements()
    decided = evaluate_flow.decide_promotion(scored, "unused", {}, first, announce=announced)
    assert decided["promoted"] and decided["reason"].startswith("no champion yet") and not decided["earlier"]
    assert str(client.get_model_version_by_alias(model, registry.CHAMPION).version) == "1"

    again = evaluate_flow.decide_promotion(scored, "unused", {}, first, announce=announced)
    assert again["promoted"] and again["reason"] == decided["reason"] and again["earlier"]
    assert "recorded by an earlier attempt" in again["note"]
    assert len(announced) == 1  # one event for one promotion
    description = client.get_model_version(model, "1").description
    assert description.count("Promotion: promoted") == 1
    assert "val knn_top1 0.9000 [0.8800, 0.9200], test knn_top1 0.8500 [0.8200, 0.8800]" in description
    assert client.get_run(first).data.tags["promotion.decision"].startswith("promoted: no champion yet")


def test_a_retry_after_a_partial_failure_finishes_the_recorded_decision_and_says_so(store):
    client, model, db = store["client"], store["model"], store["db"]
    scored = _scored(model, "1", store["run_id"])
    evaluation = evaluate_flow.record_evaluation(scored)
    announced = _Announcements()
    # The registry refuses to move any alias (a real failure of the real store's write).
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute("CREATE TRIGGER no_alias BEFORE INSERT ON registered_model_aliases "
                    "BEGIN SELECT RAISE(ABORT, 'alias writes refused'); END")
    with pytest.raises(MlflowException):
        evaluate_flow.decide_promotion(scored, "unused", {}, evaluation, announce=announced)
    assert client.get_run(evaluation).data.tags["promotion.decision"].startswith("promoted: ")  # recorded first
    assert "champion" not in client.get_registered_model(model).aliases and not announced

    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute("DROP TRIGGER no_alias")
    announced.fail = True  # this attempt moves the alias, then dies before the event is sent
    with pytest.raises(RuntimeError, match="killed"):
        evaluate_flow.decide_promotion(scored, "unused", {}, evaluation, announce=announced)
    assert str(client.get_model_version_by_alias(model, registry.CHAMPION).version) == "1" and not announced

    finished = evaluate_flow.decide_promotion(scored, "unused", {}, evaluation, announce=announced)
    assert finished["promoted"] and finished["earlier"] and "v1 is champion" in finished["note"]
    assert "announced now" in finished["note"]
    assert len(announced) == 1 and announced[0][:3] == (model, "1", None)
    assert [run.info.run_name for run in _evaluation_runs(store)] == ["evaluate-v1"]


class _Failing(BaseHTTPRequestHandler):
    """A tracking server in trouble with its registry: the champion lookup (GET
    registered-models/alias) gets `status` and `body` (a proxy's plain-text 500, or an auth
    layer's JSON refusal); any other request is answered 200 `{}`, so that a client which took
    the error for "no champion" would go on to move the alias here. The requests are kept."""

    status, body, content_type = 500, b"Internal Server Error", "text/plain"
    requests: list[tuple[str, str]] = []

    def _answer(self) -> None:
        type(self).requests.append((self.command, self.path))
        failing = self.command == "GET" and "/registered-models/alias" in self.path
        status, body, content_type = (self.status, self.body, self.content_type) if failing else (
            200, b"{}", "application/json")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("status,body,content_type,code", [
    (500, b"Internal Server Error", "text/plain", "INTERNAL_ERROR"),
    (403, b'{"error_code": "PERMISSION_DENIED", "message": "Permission denied"}', "application/json",
     "PERMISSION_DENIED"),
])
def test_a_registry_error_other_than_not_found_fails_the_decision_and_promotes_nothing(
        monkeypatch, status, body, content_type, code):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the client's own retries: none here
    handler = type("Handler", (_Failing,), {"status": status, "body": body, "content_type": content_type,
                                             "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mlflow.set_tracking_uri(f"http://127.0.0.1:{server.server_address[1]}")
    announced = _Announcements()
    try:
        with pytest.raises(MlflowException) as raised:
            evaluate_flow.decide_promotion(_scored("promo", "2", "0" * 32), "unused", {}, None, announce=announced)
    finally:
        server.shutdown()
        server.server_close()
        mlflow.set_tracking_uri(None)
    assert raised.value.error_code == code
    assert not announced
    assert [method for method, _ in handler.requests] == ["GET"], handler.requests  # nothing written
    assert "registered-models/alias" in handler.requests[0][1]


@pytest.fixture
def champion_v1(store, monkeypatch):
    """The store's model with v1 as champion and v2 registered; the champion's gate score (v1's
    val kNN, as the protocol would score it on the same dataset version) is 0.90, with its interval."""
    from cl_core.evaluation.intervals import Interval
    from cl_core.evaluation.split_scores import GateScore

    client, model = store["client"], store["model"]
    client.create_model_version(model, source=str(store["root"] / "nowhere"), run_id=store["run_id"])
    client.set_registered_model_alias(model, registry.CHAMPION, "1")
    scored_champion = []

    def champion_score(model_ref, dataset, store, cfg, metric):  # stands in for loading v1 and scoring it on val
        scored_champion.append((model_ref, metric))
        return GateScore(metric, 0.90, Interval(0.88, 0.92))

    monkeypatch.setattr(evaluate_flow, "champion_score", champion_score)
    monkeypatch.setattr(evaluate_flow.DatasetStore, "resolve", lambda self, name, version: type(
        "Version", (), {"kind": "image", "name": name, "version": version})())
    return store | {"scored_champion": scored_champion}


@pytest.mark.parametrize("val,test,min_improvement,promoted", [
    (0.95, 0.80, 0.0, True),    # better on val, worse on test: promoted (test decides nothing)
    (0.85, 0.99, 0.0, False),   # better on test only: kept
    (0.90, 0.99, 0.0, False),   # a tie on val keeps the champion
    (0.905, 0.9, 0.01, False),  # better on val, but by less than registry.min_improvement
    (0.91, 0.9, 0.01, True),    # better by exactly the margin
])
def test_the_gate_reads_val_and_its_margin(champion_v1, val, test, min_improvement, promoted):
    model = champion_v1["model"]
    scored = _scored(model, "2", champion_v1["run_id"], knn=val, test_knn=test)
    decided = evaluate_flow.decide_promotion(scored, "unused", {}, None, announce=_Announcements(),
                                             min_improvement=min_improvement)
    assert decided["promoted"] is promoted
    assert champion_v1["scored_champion"] == [(f"{model}/1", "knn_top1")]
    champion = champion_v1["client"].get_model_version_by_alias(model, registry.CHAMPION).version
    assert str(champion) == ("2" if promoted else "1")
    # The reason names both val values and their intervals, and never the test value.
    reason = decided["reason"]
    assert f"v2 val knn_top1={val:.4f} [{val - 0.02:.4f}, {min(val + 0.02, 1):.4f}]" in reason
    assert "champion v1 val knn_top1=0.9000 [0.8800, 0.9200]" in reason
    assert ("beats" if promoted else "does not beat") in reason and "test" not in reason
    assert ("registry.min_improvement" in reason) is (min_improvement > 0)
