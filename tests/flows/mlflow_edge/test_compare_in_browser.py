"""Comparing two training runs in the MLflow UI, in a real headless Chromium: the runs table of
the experiment and the compare page of the two runs show both run names and their kNN top-1."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.services import NO_JOB_RUNNER, free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EXPERIMENT = "digits-ntxent"


@pytest.fixture(scope="module")
def mlflow_server(digits_run, digits_challenger, tmp_path_factory):
    """`mlflow server` over a workspace with two evaluated training runs in one experiment: the
    session's digits run and the challenger trained after it (tests/conftest.py); the test only
    reads them."""
    root = tmp_path_factory.mktemp("browser")
    workspace = digits_challenger["workspace"]
    port = free_port()
    log = (root / "mlflow-server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{workspace / 'mlflow.db'}",
         "--artifacts-destination", str(workspace / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **NO_JOB_RUNNER},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).read() == b"OK":
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (root / "mlflow-server.log").read_text()[-3000:]
            time.sleep(1)
        yield {"url": url, "workspace": workspace, "root": root,
               "run_ids": [digits_run.summary["train"]["run_id"], digits_challenger["trained"]["run_id"]]}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


# Scrolls each element that scrolls on its own by 300 px, back to the top once at its end.
_SCROLL_EACH = """
for (const e of document.querySelectorAll('*')) {
  if (e.scrollHeight > e.clientHeight + 5 && ['auto', 'scroll'].includes(getComputedStyle(e).overflowY)) {
    e.scrollTop = e.scrollTop + e.clientHeight + 1 >= e.scrollHeight ? 0 : e.scrollTop + 300;
  }
}"""


def _page_text_with(browser, url: str, wanted: list[str], screenshot: Path, values: tuple[float, ...] = (),
                    timeout: float = 90) -> str:
    """Open `url` and wait until the rendered page's text holds every string in `wanted` and shows
    every number in `values`. MLflow 3.17's compare page lists params and metrics in tables that
    scroll on their own (about 500 px tall, rows in name order), so a metric late in the
    alphabet (`eval.val.*`) is on the page only once its table has scrolled: the page is read as
    its scrolling parts move, and the text is every line seen so far."""
    browser.get(url)
    deadline = time.monotonic() + timeout
    lines: dict[str, None] = {}
    while True:
        lines.update(dict.fromkeys(browser.find_element("tag name", "body").text.splitlines()))
        text = "\n".join(lines)
        if (all(item in text for item in wanted) and all(_shows(text, value) for value in values)) or time.monotonic() > deadline:
            break
        browser.execute_script(_SCROLL_EACH)
        time.sleep(1)
    browser.save_screenshot(str(screenshot))
    return text


def _shows(text: str, value: float) -> bool:
    """Whether the page shows `value` as the UI writes it: five decimals in the metrics table, or three with
    trailing zeros dropped beside the charts (0.7796610 shows as 0.77966 and 0.78)."""
    numbers = set(re.findall(r"\d+\.\d+", text))
    return f"{value:.5f}" in numbers or f"{value:.3f}".rstrip("0").rstrip(".") in numbers


def test_runs_table_and_compare_page_show_both_runs(mlflow_server, browser, tmp_path):
    client = MlflowClient(f"sqlite:///{mlflow_server['workspace'] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`clpipe.stage` = 'train'")
    assert sorted(run.info.run_id for run in runs) == sorted(mlflow_server["run_ids"])
    names = [run.info.run_name for run in runs]
    values = tuple(run.data.metrics["eval.val.knn_top1"] for run in runs)

    runs_page = _page_text_with(browser, f"{mlflow_server['url']}/#/experiments/{experiment.experiment_id}/runs",
                                names, tmp_path / "runs.png")
    for name in names:
        assert name in runs_page, runs_page[:2000]

    ids = json.dumps([run.info.run_id for run in runs], separators=(",", ":"))
    compare_url = f"{mlflow_server['url']}/#/compare-runs?runs={ids}&experiments={json.dumps([experiment.experiment_id])}"
    compare_page = _page_text_with(browser, compare_url, [*names, "eval.val.knn_top1"], tmp_path / "compare.png", values)
    for item in (*names, "eval.val.knn_top1"):
        assert item in compare_page, (item, compare_page[:3000])
    for value in values:
        assert _shows(compare_page, value), (value, compare_page[:3000])
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    shutil.copy(tmp_path / "compare.png", mlflow_server["root"] / "compare.png")
    shutil.copy(tmp_path / "runs.png", mlflow_server["root"] / "runs.png")
