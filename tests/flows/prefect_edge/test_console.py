"""The console shows one line per step; the services' output goes to the run's log file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from flows.cli import _print_run_summary
from flows.prefect_edge import progress
from flows.prefect_edge.console import quiet_run
from flows.workspace import Workspace
from tests.conftest import DIGITS_RUN_EPOCHS, clpipe, last_json


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
@pytest.mark.integration
def test_a_run_prints_a_few_lines_and_logs_the_rest(digits_run, capsys):
    """The session's `clpipe run --json` (tests/conftest.py): a plain run shows the same step lines on
    stderr and prints the summary of `_print_run_summary` where --json prints its one JSON line."""
    result = digits_run.result
    printed = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(printed) == 1 and json.loads(printed[0]) == digits_run.summary
    _print_run_summary(digits_run.summary, Workspace(digits_run.workspace))
    summary = capsys.readouterr().out
    shown = summary + result.stderr
    assert len(shown.splitlines()) <= 20, shown
    assert "Reporting training result" not in result.stdout + result.stderr
    logs = digits_run.logs  # right after the run, before any other command wrote to the workspace
    assert len(logs) == 1 and f"log            {logs[0]}" in summary
    logged = logs[0].read_text()
    assert "Reporting training result" in logged
    epochs = DIGITS_RUN_EPOCHS
    assert logged.count(f"epoch {epochs}/{epochs}: loss") == 1  # the worker's line, forwarded once


@pytest.mark.slow
@pytest.mark.integration
def test_a_command_with_json_prints_one_line_and_logs_the_rest(tmp_path):
    workspace = tmp_path / "ws"
    ingested = clpipe("ingest", "digits", "--name", "more", "--limit", "50", "--json", workspace=workspace)
    assert last_json(ingested)["rows"] == 50
    assert len([line for line in ingested.stdout.splitlines() if line.strip()]) == 1
    assert json.loads(ingested.stdout)["log"].startswith(str(workspace / "logs"))
    assert Path(json.loads(ingested.stdout)["log"]).is_file()
