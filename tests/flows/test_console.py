"""The console shows one line per step; the services' output goes to the run's log file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from flows import progress
from flows.console import quiet_run
from tests.conftest import clpipe, last_json

TINY = """
data: {limit: 300, image_size: 16}
model: {depths: [1, 1], widths: [16, 32], proj_hidden: 64, proj_dim: 32}
views: {flip_p: 0.0, gray_p: 0.0}
train: {epochs: 2, batch_size: 64, workers: 2}
eval: {probe_max_iter: 100}
"""


def test_output_goes_to_the_log_and_steps_to_the_console(tmp_path, capfd):
    with quiet_run(tmp_path / "logs", "ingest") as log:
        os.write(1, b"a library's chatter\n")  # fd level: pytest's capfd keeps sys.stdout for itself
        os.write(2, b"a subprocess's stderr\n")
        progress.report("ingest", 0, 10, "records")
        progress.report("ingest", 10, 10, "records")
        progress.finish("ingest", "digits@abc: 10 rows")
    shown = capfd.readouterr()
    assert shown.out == ""
    assert [line.split(" done in ")[0].strip() for line in shown.err.splitlines()] == ["ingest"]
    assert "digits@abc: 10 rows" in shown.err
    assert log.path.parent == tmp_path / "logs"
    assert log.path.read_text().splitlines() == ["a library's chatter", "a subprocess's stderr"]
    print("after", flush=True)
    sys.stderr.write("after\n")
    assert capfd.readouterr() == ("after\n", "after\n")  # the streams are the console's again


def test_nothing_is_reported_without_a_listener():
    progress.report("train", 1, 2, "epochs", "loss 1.0")
    progress.finish("train")


@pytest.mark.slow
def test_a_run_prints_a_few_lines_and_logs_the_rest(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    workspace = tmp_path / "ws"
    result = clpipe("run", "--config", str(config), workspace=workspace)
    assert result.returncode == 0, result.stderr[-4000:]
    shown = result.stdout + result.stderr
    assert len(shown.splitlines()) <= 20, shown
    assert "Reporting training result" not in shown
    logs = list((workspace / "logs").glob("*.log"))
    assert len(logs) == 1 and f"log            {logs[0]}" in result.stdout
    logged = logs[0].read_text()
    assert "Reporting training result" in logged
    assert logged.count("epoch 2/2: loss") == 1  # the worker's line, forwarded once

    ingested = clpipe("ingest", "digits", "--name", "more", "--limit", "50", "--json", workspace=workspace)
    assert last_json(ingested)["rows"] == 50
    assert len([line for line in ingested.stdout.splitlines() if line.strip()]) == 1
    assert json.loads(ingested.stdout)["log"].startswith(str(workspace / "logs"))
    assert Path(json.loads(ingested.stdout)["log"]).is_file()
