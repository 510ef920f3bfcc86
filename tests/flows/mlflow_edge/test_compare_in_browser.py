"""Comparing two training runs in the MLflow UI, in a real headless Chromium: the runs table of
the experiment and the compare page of the two runs show both run names and their kNN top-1."""

from __future__ import annotations

import json
import shutil

import pytest
from mlflow import MlflowClient

from tests.browser_pages import page_text_with, shows
from tests.services import mlflow_ui

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EXPERIMENT = "digits-ntxent"


@pytest.fixture(scope="module")
def mlflow_server(digits_run, digits_challenger, tmp_path_factory):
    """`mlflow server` over a workspace with two evaluated training runs in one experiment: the
    session's digits run and the challenger trained after it (tests/conftest.py); the test only
    reads them."""
    root = tmp_path_factory.mktemp("browser")
    workspace = digits_challenger["workspace"]
    with mlflow_ui(workspace, root / "mlflow-server.log") as url:
        yield {"url": url, "workspace": workspace, "root": root,
               "run_ids": [digits_run.summary["train"]["run_id"], digits_challenger["trained"]["run_id"]]}


def test_runs_table_and_compare_page_show_both_runs(mlflow_server, browser, tmp_path):
    client = MlflowClient(f"sqlite:///{mlflow_server['workspace'] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`clpipe.stage` = 'train'")
    assert sorted(run.info.run_id for run in runs) == sorted(mlflow_server["run_ids"])
    names = [run.info.run_name for run in runs]
    values = tuple(run.data.metrics["eval.val.knn_top1"] for run in runs)

    runs_page = page_text_with(browser, f"{mlflow_server['url']}/#/experiments/{experiment.experiment_id}/runs",
                                names, tmp_path / "runs.png")
    for name in names:
        assert name in runs_page, runs_page[:2000]

    ids = json.dumps([run.info.run_id for run in runs], separators=(",", ":"))
    compare_url = f"{mlflow_server['url']}/#/compare-runs?runs={ids}&experiments={json.dumps([experiment.experiment_id])}"
    compare_page = page_text_with(browser, compare_url, [*names, "eval.val.knn_top1"], tmp_path / "compare.png", values)
    for item in (*names, "eval.val.knn_top1"):
        assert item in compare_page, (item, compare_page[:3000])
    for value in values:
        assert shows(compare_page, value), (value, compare_page[:3000])
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    shutil.copy(tmp_path / "compare.png", mlflow_server["root"] / "compare.png")
    shutil.copy(tmp_path / "runs.png", mlflow_server["root"] / "runs.png")
