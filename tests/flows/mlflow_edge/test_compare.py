"""`clpipe compare` on a real sqlite MLflow store with runs logged by MLflow."""

from __future__ import annotations

import json

import mlflow
import pytest
from mlflow import MlflowClient

from cl_core.config import load_config
from flows import run_description
from flows.cli import main
from flows.mlflow_edge import compare


def _training_run(client: MlflowClient, experiment_id: str, objective: str, metrics: dict[str, float]) -> str:
    config = load_config(None, {"loss.name": objective})
    tags = run_description.training_tags(config, "digits", "v1", None, None, None)
    run = client.create_run(experiment_id, run_name=f"{objective}-digits-20250101-000000", tags=tags)
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@pytest.fixture
def store(tmp_path):
    """Workspace with experiment 'digits-cmp': three training runs (two registered, one champion),
    a nested evaluation run, and an empty experiment 'other'."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_experiment("other", artifact_location=(tmp_path / "a0").as_uri())
    experiment_id = client.create_experiment("digits-cmp", artifact_location=(tmp_path / "a1").as_uri())
    # dcl is better on val and worse on test: it is listed first (compare chooses on val).
    ntxent = _training_run(client, experiment_id, "ntxent", {"eval.val.knn_top1": 0.81, "eval.test.knn_top1": 0.84,
                                                             "eval.baseline.knn_top1": 0.7, "train.seconds": 75.0,
                                                             "loss": 3.0})
    dcl = _training_run(client, experiment_id, "dcl", {"eval.val.knn_top1": 0.93, "eval.test.knn_top1": 0.83,
                                                       "eval.val.linear_probe": 0.95, "train.seconds": 30.0})
    _training_run(client, experiment_id, "moco", {})  # failed before evaluation
    child = client.create_run(experiment_id, run_name="evaluate-v1", tags={
        run_description.PARENT_TAG: ntxent, run_description.STAGE_TAG: "evaluate"})
    client.log_metric(child.info.run_id, "eval.val.knn_top1", 0.99)
    client.create_registered_model("digits-cmp")
    for run_id in (ntxent, dcl):
        client.create_model_version("digits-cmp", (tmp_path / "m").as_uri(), run_id)
    client.set_registered_model_alias("digits-cmp", "champion", "2")
    yield {"uri": uri, "client": client, "tmp_path": tmp_path}
    mlflow.set_tracking_uri(None)


def test_training_runs_only_best_first_with_versions_and_aliases(store):
    compared = compare.compare(store["client"], "digits-cmp", None)
    assert compared["metric"] == "eval.val.knn_top1"
    assert [run["objective"] for run in compared["runs"]] == ["dcl", "ntxent", "moco"]
    best = compared["runs"][0]
    assert best["model_version"] == "digits-cmp/2" and best["aliases"] == ["champion"]
    assert best["dataset"] == "digits@v1" and best["metrics"]["eval.val.knn_top1"] == 0.93
    assert compared["runs"][2]["model_version"] is None
    assert "loss" not in compared["runs"][1]["metrics"]  # per-epoch history is not a column
    assert compared["columns"] == ["eval.val.knn_top1", "eval.test.knn_top1", "eval.baseline.knn_top1",
                                   "eval.val.linear_probe", "train.seconds"]


def test_sort_by_another_metric_and_default_experiment(store):
    compared = compare.compare(store["client"], None, "train.seconds")
    assert compared["experiment"] == "digits-cmp"
    assert [run["objective"] for run in compared["runs"]] == ["ntxent", "dcl", "moco"]


def test_table_lines_up_runs_as_rows(store):
    text = compare.format_comparison(compare.compare(store["client"], "digits-cmp", None))
    lines = text.splitlines()
    assert lines[0] == "experiment digits-cmp (3 training runs), best first by eval.val.knn_top1"
    header, first, second, third = lines[2:]
    assert header.split() == ["run", "objective", "dataset", "eval.val.knn_top1", "eval.test.knn_top1",
                              "eval.baseline.knn_top1", "eval.val.linear_probe", "train.seconds", "duration", "model",
                              "aliases", "status"]
    assert first.split()[:8] == ["dcl-digits-20250101-000000", "dcl", "digits@v1", "0.9300", "0.8300", "-", "0.9500",
                                 "30.0000"]
    assert first.split()[-3:] == ["digits-cmp/2", "champion", "FINISHED"]
    assert second.split()[3:6] == ["0.8100", "0.8400", "0.7000"] and third.split()[3] == "-"
    assert header.index("eval.val.knn_top1") == first.index("0.9300") == second.index("0.8100")


def test_a_run_logged_before_val_was_scored_shows_its_score_as_test(store):
    """Runs logged before validation was scored separately have `eval.knn_top1`, their test
    split's value: it shows in the test column, never in val, so they sort after runs with a val score."""
    client = store["client"]
    experiment_id = client.get_experiment_by_name("digits-cmp").experiment_id
    _training_run(client, experiment_id, "supcon", {"eval.knn_top1": 0.99, "eval.linear_probe": 0.9})
    compared = compare.compare(client, "digits-cmp", None)
    old = next(run for run in compared["runs"] if run["objective"] == "supcon")
    assert old["metrics"] == {"eval.test.knn_top1": 0.99, "eval.test.linear_probe": 0.9}
    assert [run["objective"] for run in compared["runs"]] == ["dcl", "ntxent", "supcon", "moco"]
    assert "eval.test.linear_probe" in compared["columns"] and "eval.knn_top1" not in compared["columns"]


def test_cli_prints_json_and_fails_in_one_line_on_an_unknown_experiment(store, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    assert main(["compare", "--experiment", "digits-cmp", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["command"] == "compare" and len(printed["runs"]) == 3
    assert main(["compare", "--experiment", "nope"]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == "clpipe compare failed: no experiment 'nope'; experiments: Default, digits-cmp, other"


def test_cli_without_a_store_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["compare", "--workspace", str(tmp_path / "none")]) == 1
    assert "no MLflow store at sqlite:///" in capsys.readouterr().err
