"""What the table promises when runs overlap or die: a reader keeps the snapshot it opened for
`snapshot_grace`, and a writer killed at any step of a publish (its index built, its folder renamed, CURRENT
replaced) leaves nothing that looks published. Writers are real processes; a kill is a real SIGKILL at the named step."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cl_core.embeddings import EmbeddingTable, describe_table, open_current
from tests.cl_core.embeddings.test_table import _export
from tests.conftest import REPO

# A writer process: publishes `count` full snapshots of dataset VERSION with keep=KEEP. With
# CRASH "rename" it SIGKILLs itself right after renaming the staging folder into place (before
# CURRENT moves); with "replace" inside CURRENT's atomic replace (temporary file written, not
# yet renamed over CURRENT); with "index" right after its index child built the snapshot's graph
# in the staging folder (before the manifest).
_WRITER = textwrap.dedent("""
    import os, signal, sys
    from cl_core.datasets import DatasetStore
    from cl_core.embeddings import EmbeddingTable, write_full_snapshot
    from cl_core.embeddings import writer
    from cl_core.embeddings.snapshot_index import IndexSettings
    from cl_core.embeddings.table import SNAPSHOT_PATTERN
    from tests.cl_core.embeddings.conftest import fake_embed, record
    
    root, version, count, keep, grace, crash = sys.argv[1:]
    count, keep, grace = int(count), int(keep), float(grace)
    rename, replace = os.rename, os.replace

    def renamed_then_killed(source, target, *args, **kwargs):
        rename(source, target, *args, **kwargs)
        if crash == "rename" and SNAPSHOT_PATTERN.match(os.path.basename(target)):
            os.kill(os.getpid(), signal.SIGKILL)

    def killed_inside_replace(source, target, *args, **kwargs):
        if crash == "replace" and os.path.basename(target) == "CURRENT":
            os.kill(os.getpid(), signal.SIGKILL)
        replace(source, target, *args, **kwargs)

    built = writer.index_record

    def indexed_then_killed(*args, **kwargs):
        built(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    os.rename, os.replace = renamed_then_killed, killed_inside_replace
    if crash == "index":
        writer.index_record = indexed_then_killed
    settings = IndexSettings(exact_max_rows=2)  # 8 rows: a graph, built by a child process
    dataset = DatasetStore(os.path.join(root, "datasets")).resolve("d", version)
    table = EmbeddingTable(os.path.join(root, "embeddings"), "m", "d", snapshot_grace=grace)
    for _ in range(count):
        with table.lock():
            write_full_snapshot(table, dataset, fake_embed, 2, record(dataset_version=version), batch_size=4,
                                keep_snapshots=keep, index_settings=settings)
""")


def _writer(root: Path, version: str, count: int = 1, keep: int = 1, grace: float = 3600.0,
            crash: str = "none") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _WRITER, str(root), version, str(count), str(keep), str(grace), crash],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def _published(table: EmbeddingTable) -> list[str]:
    """Snapshot folders on disk, orphans included."""
    return sorted(p.name for p in table.path.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.mark.parametrize("grace, kept", [(3600.0, True), (0.0, False)])
def test_a_reader_keeps_its_snapshot_through_three_publishes_within_the_grace(tmp_path, ingest, grace, kept):
    dataset = ingest(range(10))
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d", snapshot_grace=grace)
    first = _export(table, dataset, keep=1)
    reader = open_current(tmp_path / "embeddings", "m", "d")  # lazy: files are read below

    written = _writer(tmp_path, dataset.version, count=3, keep=1, grace=grace)
    assert written.returncode == 0, written.stderr[-3000:]
    assert table.current_id() != first.id
    if kept:  # keep_snapshots=1, yet every snapshot superseded within the hour is still there
        assert reader.to_table().num_rows == 10
        assert len(table.snapshot_ids()) == 4
    else:  # without a grace the reader loses it: what the grace is for
        with pytest.raises(FileNotFoundError):
            reader.to_table()
        assert table.snapshot_ids() == [table.current_id()]


def test_a_snapshot_past_its_grace_is_pruned(tmp_path, ingest):
    dataset = ingest(range(6))
    # 2 s: well above the fsyncs between a publish and its prune on a loaded disk.
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d", snapshot_grace=2.0)
    first = _export(table, dataset, keep=1)
    second = _export(table, dataset, keep=1)
    assert table.snapshot_ids() == [first.id, second.id]  # first superseded just now
    time.sleep(2.1)
    third = _export(table, dataset, keep=1)
    assert table.snapshot_ids() == [second.id, third.id]  # first past its grace; second superseded just now


@pytest.mark.parametrize("crash", ["index", "rename", "replace"])
def test_a_writer_killed_mid_publish_leaves_nothing_that_looks_published(tmp_path, ingest, crash):
    dataset = ingest(range(8))
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d", snapshot_grace=0)
    before = _export(table, dataset, keep=3)

    killed = _writer(tmp_path, dataset.version, keep=3, grace=0, crash=crash)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    leftovers = sorted(p.name for p in table.path.iterdir() if p.name not in (".lock", "CURRENT", before.id))
    if crash == "index":  # the staging folder, its parts and its index, no manifest
        assert len(leftovers) == 1 and leftovers[0].startswith(".staging-")
        assert [p.name for p in (table.path / leftovers[0] / "index").iterdir()] == ["rows.usearch"]
    elif crash == "rename":  # a whole snapshot folder that CURRENT never named
        assert len(leftovers) == 1 and _published(table) == sorted([before.id, leftovers[0]])
    else:  # the renamed snapshot and CURRENT's temporary file
        assert len(leftovers) == 2 and any(name.startswith(".CURRENT.") for name in leftovers)
    # Readers, `clpipe table` and prune see only what CURRENT named.
    assert table.current_id() == before.id and table.snapshot_ids() == [before.id]
    assert describe_table(table)["snapshots"] == [before.id]
    assert open_current(tmp_path / "embeddings", "m", "d").count_rows() == 8

    rerun = _writer(tmp_path, dataset.version, keep=3, grace=0)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = table.current_id()
    assert sorted(p.name for p in table.path.iterdir()) == sorted([".lock", "CURRENT", before.id, after])
    assert table.snapshot_ids() == [before.id, after] and table.current().manifest.parent == before.id


def test_describe_tolerates_a_prune_beside_it(tmp_path, ingest):
    dataset = ingest(range(6))
    # A short grace: parents are pruned while describe_table walks them, never the CURRENT it just read.
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d", snapshot_grace=0.05)
    for _ in range(3):
        _export(table, dataset, keep=1)
    done, described = threading.Event(), []

    def publish_and_prune():
        while not done.is_set():
            _export(table, dataset, keep=1)

    writer = threading.Thread(target=publish_and_prune)
    writer.start()
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            described.append(describe_table(table))
    finally:
        done.set()
        writer.join()
    assert all(d["current"]["rows"] == 6 for d in described)
    assert any(d["lineage"] and d["lineage"][-1].get("removed") for d in described)  # it did meet pruned parents
