"""`clpipe reembed` as processes: SIGKILL in the middle of a backfill leaves CURRENT on the old
complete snapshot and a rerun finishes; two runs started together publish one snapshot. Real
Prefect, MLflow and Parquet, in a copy of the session's digits run (tests/conftest.py); each test
backfills into a model version of its own (a new registry version of the trained weights: no
second training)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from cl_core.datasets import DatasetStore
from cl_core.embeddings import EmbeddingTable, open_current
from tests.conftest import (
    CLI_SERVICES,
    REPO,
    assert_vectors_differ,
    clpipe,
    copy_workspace,
    last_json,
    register_changed_image_model,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MODEL, DATASET = "digits-ntxent", "digits"
# Two images per model call: the backfill of the run's 500 rows takes seconds, long enough to kill it midway.
SLOW_BATCH = "2"


@pytest.fixture(scope="module")
def trained(digits_run, tmp_path_factory):
    """A copy of the workspace where `clpipe run` ingested 500 digits, trained, registered and exported."""
    workspace = copy_workspace(digits_run.workspace, tmp_path_factory.mktemp("reembed-processes") / "workspace")
    mlflow.set_tracking_uri(f"sqlite:///{workspace / 'mlflow.db'}")
    rows = digits_run.summary["ingest"]["rows"]
    yield {"workspace": workspace, "summary": digits_run.summary, "table": workspace / "embeddings" / MODEL / DATASET,
           "rows": rows}
    mlflow.set_tracking_uri(None)


def _new_version(trained) -> str:
    """Register the trained weights with seeded noise added: a model version the table has not
    seen, whose vectors differ from the trained ones, so a reembed with it backfills every row
    and a backfill that copied the parent's vectors would be seen."""
    return register_changed_image_model(MODEL, trained["summary"]["train"]["model_version"])


def _start_reembed(workspace: Path, version: str, log: Path) -> subprocess.Popen:
    """`clpipe reembed` in its own process group, so that the test can kill what it started;
    its output goes to `log` (.out, .err): a pipe nobody reads would stall it."""
    command = [sys.executable, "-m", "flows.cli", "reembed", "--model", f"{MODEL}/{version}", "--dataset", DATASET,
               "--batch-size", SLOW_BATCH, "--json", "--workspace", str(workspace)]
    environment = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS")}
    environment.update(CLI_SERVICES.environment(keep=set()))  # the session's Prefect server, as clpipe() uses
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        return subprocess.Popen(command, cwd=REPO, env=environment, stdout=out, stderr=err, start_new_session=True)


def _finished(process: subprocess.Popen, log: Path) -> dict:
    """The JSON line of a reembed started by `_start_reembed`, once it exits."""
    process.wait(timeout=600)
    return last_json(subprocess.CompletedProcess(process.args, process.returncode, log.with_suffix(".out").read_text(),
                                                 log.with_suffix(".err").read_text()))


def _snapshots(table: Path) -> list[str]:
    return sorted(p.name for p in table.iterdir() if p.is_dir() and not p.name.startswith("."))


def _staging_parts(table: Path) -> list[Path]:
    return list(table.glob(".staging-*/part-*.parquet"))


def test_sigkill_mid_backfill_leaves_current_on_the_old_snapshot_and_a_rerun_completes(trained):
    workspace, table = trained["workspace"], trained["table"]
    version = _new_version(trained)
    current = (table / "CURRENT").read_text()
    old = open_current(workspace / "embeddings", MODEL, DATASET).to_table()

    log = workspace.parent / "killed"
    process = _start_reembed(workspace, version, log)
    deadline = time.monotonic() + 300
    while not _staging_parts(table) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # its children too
    process.wait()
    errors = log.with_suffix(".err").read_text()[-3000:]
    assert process.returncode == -signal.SIGKILL, "reembed ended before it was killed:\n" + errors

    staging = _staging_parts(table)
    assert staging, "the kill came before any part file was written"
    assert (table / "CURRENT").read_text() == current
    still = open_current(workspace / "embeddings", MODEL, DATASET).to_table()
    assert still.equals(old)  # readers see the old complete snapshot; the staging folder is ignored
    shown = last_json(clpipe("table", "--model", MODEL, "--dataset", DATASET, "--json", workspace=workspace))
    assert shown["current"]["snapshot"] == current.strip() and shown["current"]["rows"] == trained["rows"]

    rerun = last_json(clpipe("reembed", "--model", f"{MODEL}/{version}", "--dataset", DATASET, "--json",
                             workspace=workspace))
    assert rerun["action"] == "backfill" and rerun["model_version"] == version
    assert rerun["rows"] == rerun["rows_embedded"] == trained["rows"]
    assert (table / "CURRENT").read_text().strip() == rerun["snapshot"]
    assert not any(path.exists() for path in staging)  # the rerun removed the leftovers
    rows = open_current(workspace / "embeddings", MODEL, DATASET).to_table()
    assert rows.num_rows == trained["rows"] and set(rows.column("model_version").to_pylist()) == {version}
    assert_vectors_differ(old, rows)  # embedded with the new weights, not copied from the parent


def _waiting_for(lock_file: Path, pids: set[int]) -> set[int]:
    """Which of `pids` wait for the flock on `lock_file` (the "->" lines of /proc/locks:
    `N: -> FLOCK ADVISORY WRITE PID MAJOR:MINOR:INODE ...`)."""
    inode = str(lock_file.stat().st_ino)
    waiting = set()
    for fields in (line.split() for line in Path("/proc/locks").read_text().splitlines()):
        if fields[1:3] == ["->", "FLOCK"] and fields[6].rsplit(":", 1)[1] == inode and int(fields[5]) in pids:
            waiting.add(int(fields[5]))
    return waiting


def test_two_reembeds_started_together_publish_one_snapshot(trained):
    workspace, table = trained["workspace"], trained["table"]
    version = _new_version(trained)
    before = _snapshots(table)
    parent = open_current(workspace / "embeddings", MODEL, DATASET).to_table()

    # The test holds the table's lock until both runs wait for it, so they truly overlap
    # whatever their start-up times.
    logs = [workspace.parent / f"together-{i}" for i in range(2)]
    with EmbeddingTable(workspace / "embeddings", MODEL, DATASET).lock():
        processes = [_start_reembed(workspace, version, log) for log in logs]
        pids = {process.pid for process in processes}
        deadline = time.monotonic() + 300
        while _waiting_for(table / ".lock", pids) != pids and time.monotonic() < deadline:
            assert all(process.poll() is None for process in processes), "a reembed ended before the lock"
            time.sleep(0.1)
        assert _waiting_for(table / ".lock", pids) == pids
    results = [_finished(process, log) for process, log in zip(processes, logs, strict=True)]

    assert sorted(r["action"] for r in results) == ["backfill", "up_to_date"]
    assert results[0]["snapshot"] == results[1]["snapshot"] == (table / "CURRENT").read_text().strip()
    published = sorted(set(_snapshots(table)) - set(before))
    assert published == [results[0]["snapshot"]]
    assert not list(table.glob(".staging-*"))
    rows = open_current(workspace / "embeddings", MODEL, DATASET).to_table()
    dataset = DatasetStore(workspace / "datasets").resolve(DATASET)
    assert rows.num_rows == trained["rows"] and sorted(rows.column("id").to_pylist()) == sorted(
        dataset.read(columns=["id"]).column("id").to_pylist())
    assert set(rows.column("model_version").to_pylist()) == {version}
    assert_vectors_differ(parent, rows)
