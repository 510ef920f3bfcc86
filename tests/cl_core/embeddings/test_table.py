"""Snapshots and the CURRENT pointer: publish, prune, damaged states, the lock."""

from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from cl_core.embeddings import (
    EmbeddingTable,
    EmbeddingTableError,
    SnapshotWriter,
    describe_table,
    embedding_schema,
    open_current,
    write_embedded,
    write_full_snapshot,
)
from cl_core.embeddings.inputs import input_batches
from cl_core.embeddings.table import SNAPSHOT_PATTERN, new_snapshot_id
from tests.cl_core.embeddings.conftest import fake_embed, record


def _export(table, dataset, keep=3, embed=fake_embed):
    with table.lock():
        return write_full_snapshot(table, dataset, embed, 2, record(dataset_version=dataset.version),
                                   batch_size=4, keep_snapshots=keep)


def test_snapshot_ids_sort_by_creation_time():
    ids = [new_snapshot_id() for _ in range(3)]
    assert all(SNAPSHOT_PATTERN.match(i) for i in ids) and ids == sorted(ids) and len(set(ids)) == 3


def test_export_publishes_a_snapshot_and_points_current_at_it(tmp_path, ingest):
    dataset = ingest(range(10))
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d")
    snapshot = _export(table, dataset)
    assert table.current_id() == snapshot.id and (table.path / "CURRENT").read_text() == snapshot.id + "\n"
    m = snapshot.manifest
    assert (m.rows, m.dimension, m.rows_embedded, m.rows_reused, m.rows_deleted, m.parent) == (10, 2, 10, 0, 0, None)
    assert (m.model_name, m.model_version, m.dataset_name, m.dataset_version) == ("m", "3", "d", dataset.version)
    rows = open_current(tmp_path / "embeddings", "m", "d").to_table()
    assert rows.num_rows == 10 and rows.schema.field("embedding").type == pa.list_(pa.float32(), 2)
    assert len(rows.column("content_sha256")[0].as_py()) == 64
    assert open_current(tmp_path, "m", "d").count_rows() == 10  # the workspace root works too
    assert sorted(p.name for p in table.path.iterdir()) == sorted([".lock", "CURRENT", snapshot.id])


def test_keeps_the_last_snapshots_and_records_the_parent(tmp_path, ingest):
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d", snapshot_grace=0)  # no reader to wait for
    first = _export(table, ingest(range(10)))
    made = [first.id] + [_export(table, ingest(range(12)), keep=2).id for _ in range(3)]
    assert table.snapshot_ids() == made[-2:] and table.current_id() == made[-1]
    second = table.current()
    assert second.manifest.parent == made[-2]
    assert table.path.joinpath(made[1]).exists() is False
    described = describe_table(table)
    assert [s.get("snapshot") for s in described["lineage"]] == [made[-2], made[-3]]
    assert described["lineage"][-1]["removed"] is True


def test_rows_deleted_counts_parent_ids_gone_from_the_dataset(tmp_path, ingest):
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d")
    _export(table, ingest(range(10)))
    assert _export(table, ingest(range(2, 12))).manifest.rows_deleted == 2


def test_a_failed_write_leaves_current_and_no_staging(tmp_path, ingest):
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d")
    before = _export(table, ingest(range(5))).id

    def broken(images):
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):
        _export(table, ingest(range(30)), embed=broken)
    with pytest.raises(ValueError, match=r"expected \(4, 3\)"), table.lock():
        write_full_snapshot(table, ingest(range(6)), fake_embed, 3, record(), batch_size=4, keep_snapshots=3)
    assert table.current_id() == before and table.snapshot_ids() == [before]
    assert not list(table.path.glob(".staging-*"))


def test_non_finite_vectors_are_never_published(tmp_path, ingest):
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d")
    def one_nan_per_batch(images):
        vectors = fake_embed(images)
        vectors[0, 1] = np.nan
        return vectors

    with pytest.raises(EmbeddingTableError, match="2 null or non-finite"):  # 5 rows in batches of 4
        _export(table, ingest(range(5)), embed=one_nan_per_batch)
    assert table.current_id() is None


def test_many_part_files_and_an_empty_dataset_free_table(tmp_path, ingest):
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d")
    with table.lock(), SnapshotWriter(table, embedding_schema(2), rows_per_file=4) as writer:
        lineage = {"model_name": "m", "model_version": "1", "dataset_version": "x"}
        write_embedded(input_batches(ingest(range(10)), 4), fake_embed, writer, "image", lineage)
        snapshot = writer.publish({**record(), "parent": None, "rows_embedded": 10, "rows_reused": 0, "rows_deleted": 0}, 3)
    assert snapshot.manifest.files == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert snapshot.dataset().count_rows() == 10


def test_damaged_tables_fail_with_the_path_named(tmp_path, ingest):
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d")
    with pytest.raises(EmbeddingTableError, match="no embedding table .* at .*embeddings/m/d"):
        open_current(tmp_path / "embeddings", "m", "d")
    snapshot = _export(table, ingest(range(5)))
    (snapshot.path / "manifest.json").write_text("{not json")
    with pytest.raises(EmbeddingTableError, match=f"manifest {snapshot.path}/manifest.json is corrupt"):
        table.current()
    (table.path / "CURRENT").write_text("20990101T000000000000Z-deadbeef\n")
    with pytest.raises(EmbeddingTableError, match="names snapshot 20990101T000000000000Z-deadbeef but .* is missing"):
        open_current(tmp_path / "embeddings", "m", "d")


def test_a_second_writer_waits_for_the_lock(tmp_path):
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d")
    events = []

    def hold():
        with table.lock():
            events.append("first in")
            time.sleep(0.3)
            events.append("first out")

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.1)
    with table.lock():
        events.append("second in")
    thread.join()
    assert events == ["first in", "first out", "second in"]
