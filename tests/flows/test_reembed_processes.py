"""`clpipe reembed` as processes: SIGKILL in the middle of a backfill leaves CURRENT on the old
complete snapshot and a rerun finishes; two runs started together publish one snapshot; a run
for an older model or dataset version held behind a newer one writes nothing. Real Prefect, MLflow
and Parquet, in a copy of the session's digits run (tests/conftest.py); each test backfills into a
model version of its own (the trained weights plus seeded noise, registered anew and promoted
to champion: no second training, and vectors that differ from the parent's)."""

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
from mlflow import MlflowClient

from cl_core.datasets import DatasetStore
from cl_core.embeddings import EmbeddingTable, open_current
from flows.mlflow_edge import registry
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
           "rows": rows, "config": digits_run.config}
    mlflow.set_tracking_uri(None)


def _new_version(trained) -> str:
    """Register the trained weights with seeded noise added: a model version the table has not
    seen, whose vectors differ from the trained ones, so a reembed with it backfills every row
    and a backfill that copied the parent's vectors would be seen."""
    return register_changed_image_model(MODEL, trained["summary"]["train"]["model_version"])


def _promote(version: str) -> None:
    """Move champion to `version`, as the evaluation's gate does: the table follows champion."""
    MlflowClient().set_registered_model_alias(MODEL, registry.CHAMPION, version)


def _start_reembed(workspace: Path, version: str | None, log: Path) -> subprocess.Popen:
    """`clpipe reembed` (of MODEL/`version`, or with None of MODEL, i.e. its champion) in its own
    process group, so that the test can kill what it started; its output goes to `log` (.out,
    .err): a pipe nobody reads would stall it."""
    model = f"{MODEL}/{version}" if version else MODEL
    command = [sys.executable, "-m", "flows.cli", "reembed", "--model", model, "--dataset", DATASET,
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
    _promote(version)
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


def _wait_for_the_lock(table: Path, processes: list[subprocess.Popen]) -> None:
    """Until every one of `processes` waits for the table's lock (the test holds it)."""
    pids = {process.pid for process in processes}
    deadline = time.monotonic() + 300
    while _waiting_for(table / ".lock", pids) != pids and time.monotonic() < deadline:
        assert all(process.poll() is None for process in processes), "a reembed ended before the lock"
        time.sleep(0.1)
    assert _waiting_for(table / ".lock", pids) == pids


def test_two_reembeds_started_together_publish_one_snapshot(trained):
    workspace, table = trained["workspace"], trained["table"]
    version = _new_version(trained)
    _promote(version)
    before = _snapshots(table)
    parent = open_current(workspace / "embeddings", MODEL, DATASET).to_table()

    # The test holds the table's lock until both runs wait for it, so they truly overlap
    # whatever their start-up times.
    logs = [workspace.parent / f"together-{i}" for i in range(2)]
    with EmbeddingTable(workspace / "embeddings", MODEL, DATASET).lock():
        processes = [_start_reembed(workspace, version, log) for log in logs]
        _wait_for_the_lock(table, processes)
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


def test_runs_for_an_older_model_or_dataset_held_behind_a_newer_one_write_nothing(trained):
    """A refresh that resolved champion v(old) and waited on the lock while a promotion published
    v(new), and a late promotion event naming v(old): both end "superseded" and CURRENT stays on
    v(new). Then the same for a dataset version replaced by a newer ingest while its run waited."""
    workspace, table = trained["workspace"], trained["table"]
    old = registry.alias_target(MlflowClient(), f"{MODEL}@{registry.CHAMPION}")
    before = set(_snapshots(table))
    lock = EmbeddingTable(workspace / "embeddings", MODEL, DATASET).lock

    with lock():
        refresh = _start_reembed(workspace, None, workspace.parent / "held-refresh")  # resolves champion = old
        _wait_for_the_lock(table, [refresh])
        new = _new_version(trained)
        _promote(new)
        promoted = _start_reembed(workspace, new, workspace.parent / "held-promoted")
        late = _start_reembed(workspace, old, workspace.parent / "held-late")  # a queued event for the old version
        _wait_for_the_lock(table, [refresh, promoted, late])
    results = {name: _finished(process, workspace.parent / f"held-{name}")
               for name, process in (("refresh", refresh), ("promoted", promoted), ("late", late))}

    assert results["promoted"]["action"] == "backfill" and results["promoted"]["model_version"] == new
    for name in ("refresh", "late"):
        assert results[name]["action"] == "superseded" and results[name]["model_version"] == old
        assert f"version {old} is no longer {MODEL}@champion (version {new})" in results[name]["reason"]
        assert results[name]["rows_embedded"] == 0 and results[name]["mlflow_run_id"] is None
    assert set(_snapshots(table)) - before == {results["promoted"]["snapshot"]}
    assert (table / "CURRENT").read_text().strip() == results["promoted"]["snapshot"]

    # A dataset version replaced while its run waited: the newer ingest's run publishes, the older's writes nothing.
    dataset_before = DatasetStore(workspace / "datasets").resolve(DATASET).version
    with lock():
        stale = _start_reembed(workspace, None, workspace.parent / "held-stale")
        _wait_for_the_lock(table, [stale])
        ingested = last_json(clpipe("ingest", "digits", "--name", DATASET, "--config", str(trained["config"]),
                                    "--limit", str(trained["rows"] - 10), "--json", workspace=workspace))
        assert ingested["version"] != dataset_before
        fresh = _start_reembed(workspace, None, workspace.parent / "held-fresh")
        _wait_for_the_lock(table, [stale, fresh])
    stale_result = _finished(stale, workspace.parent / "held-stale")
    fresh_result = _finished(fresh, workspace.parent / "held-fresh")
    assert stale_result["action"] == "superseded" and stale_result["dataset_version"] == dataset_before
    assert f"{dataset_before} is no longer LATEST ({ingested['version']})" in stale_result["reason"]
    assert fresh_result["action"] == "incremental" and fresh_result["dataset_version"] == ingested["version"]
    current = open_current(workspace / "embeddings", MODEL, DATASET).to_table(columns=["dataset_version", "model_version"])
    assert current.num_rows == trained["rows"] - 10
    assert set(current.column("model_version").to_pylist()) == {new}
