"""Incremental snapshots: reuse by (id, content_sha256), embed only new and changed rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from cl_core.embeddings import EmbeddingTable, EmbeddingTableError, write_full_snapshot
from cl_core.embeddings.incremental import (
    BACKFILL,
    INCREMENTAL,
    UP_TO_DATE,
    decide,
    plan_reuse,
    write_incremental,
)
from tests.cl_core.embeddings.conftest import fake_embed, png, record


def _vectors(table: pa.Table) -> dict[str, np.ndarray]:
    ids = table.column("id").to_pylist()
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))  # (N, D)
    return dict(zip(ids, vectors, strict=True))


def test_decide_follows_the_model_and_dataset_versions(tmp_path, ingest):
    table = EmbeddingTable(tmp_path / "e", "m", "d")
    dataset = ingest(range(4))
    assert decide(None, "3", dataset.version) == BACKFILL
    with table.lock():
        current = write_full_snapshot(table, dataset, fake_embed, 2, record(), batch_size=4, keep_snapshots=3).manifest
    assert decide(current, "3", current.dataset_version) == UP_TO_DATE
    assert decide(current, "3", "another") == INCREMENTAL
    assert decide(current, "4", current.dataset_version) == BACKFILL


def test_plan_reuse_joins_on_id_and_content():
    parent = pa.table({"id": ["a", "b", "c"], "content_sha256": ["1", "2", "3"]})
    dataset = pa.table({"id": ["a", "b", "d"], "split": ["train"] * 3, "content_sha256": ["1", "changed", "4"]})
    plan = plan_reuse(dataset, parent)
    assert plan.reused.column("id").to_pylist() == ["a"] and plan.reused.column("__parent_row").to_pylist() == [0]
    assert sorted(plan.to_embed.to_pylist()) == ["b", "d"] and plan.deleted == 1


def test_incremental_embeds_only_new_and_changed_rows(tmp_path, ingest):
    table = EmbeddingTable(tmp_path / "e", "m", "d")
    first = ingest(range(10))
    with table.lock():
        parent = write_full_snapshot(table, first, fake_embed, 2, record(), batch_size=4, keep_snapshots=3)
    values = [*range(1, 10), 10, 11]  # img000 deleted, img010 and img011 added
    ids = [f"img{v:03d}" for v in values]
    values[4] = 105  # img005's image changed
    second = ingest(values, ids)
    seen: list[bytes] = []

    def recording(images):
        seen.extend(images)
        return fake_embed(images)

    with table.lock():
        snapshot = write_incremental(
            table, parent, second, recording, record(action="incremental"), batch_size=4, keep_snapshots=3
        )
    m = snapshot.manifest
    assert (m.rows, m.rows_embedded, m.rows_reused, m.rows_deleted, m.parent) == (11, 3, 8, 1, parent.id)
    assert sorted(seen) == sorted([png(10), png(11), png(105)])
    old, new = _vectors(parent.read()), _vectors(snapshot.read())
    for key in set(old) & set(new) - {"img005"}:
        assert new[key].tobytes() == old[key].tobytes()  # copied bit for bit
    fresh = EmbeddingTable(tmp_path / "fresh", "m", "d")
    with fresh.lock():
        full = _vectors(write_full_snapshot(fresh, second, fake_embed, 2, record(), batch_size=4, keep_snapshots=3).read())
    assert sorted(full) == sorted(new) and all(np.allclose(full[k], new[k], atol=1e-6) for k in full)
    assert table.current_id() == snapshot.id


def test_a_corrupt_parent_part_fails_with_its_path_and_keeps_current(tmp_path, ingest):
    table = EmbeddingTable(tmp_path / "e", "m", "d")
    with table.lock():
        parent = write_full_snapshot(table, ingest(range(4)), fake_embed, 2, record(), batch_size=4, keep_snapshots=3)
    parent.files[0].write_bytes(b"not parquet")
    with pytest.raises(EmbeddingTableError, match=f"snapshot {parent.path} has an unreadable part file"), table.lock():
        write_incremental(table, parent, ingest(range(5)), fake_embed, record(), batch_size=4, keep_snapshots=3)
    assert table.current_id() == parent.id and not list(table.path.glob(".staging-*"))


def test_reused_vectors_are_copied_a_slice_at_a_time_not_read_whole(tmp_path, ingest, monkeypatch):
    """The parent's vectors (1,000 x 4,096 float32: 16 MB, in row groups of 20 rows) are streamed
    COPY_ROWS rows at a time: the bytes arrow holds during the incremental write (sampled every
    half millisecond beside it) stay far below the vector bytes, and every reused vector is
    still copied bit for bit, in the parent's order."""
    import threading
    import time

    from cl_core.embeddings import incremental

    def wide(images):  # a 4,096-wide 'model'
        return np.tile(fake_embed(images), (1, 2048))

    table = EmbeddingTable(tmp_path / "e", "m", "d")
    with table.lock():
        parent = write_full_snapshot(table, ingest(range(1000)), wide, 4096, record(), batch_size=20, keep_snapshots=3)
    second = ingest(range(1010))
    vector_bytes = 1000 * 4096 * 4
    monkeypatch.setattr(incremental, "COPY_ROWS", 16)
    baseline, peak, done = pa.total_allocated_bytes(), [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], pa.total_allocated_bytes() - baseline)
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with table.lock():
            snapshot = write_incremental(table, parent, second, wide, record(action="incremental"), batch_size=50,
                                         keep_snapshots=3)
    finally:
        done.set()
        watcher.join()
    assert 0 < peak[0] < vector_bytes / 4, f"arrow held {peak[0]:,} B at most, the parent's vectors are {vector_bytes:,} B"
    m = snapshot.manifest
    assert (m.rows, m.rows_embedded, m.rows_reused, m.rows_deleted) == (1010, 10, 1000, 0)
    rows = snapshot.read()
    assert rows.column("id").to_pylist()[:1000] == parent.read(columns=["id"]).column("id").to_pylist()
    old, new = _vectors(parent.read()), _vectors(rows)
    assert all(new[key].tobytes() == old[key].tobytes() for key in old)


def test_a_row_whose_label_changed_keeps_its_vector_and_takes_the_new_label(tmp_path, ingest):
    """Split and label are not the model's input: the vector is reused, the key columns are the
    dataset's; id and content_sha256, which come from the parent, equal the dataset's."""
    from cl_core.datasets import DatasetStore, ImageRecord

    table = EmbeddingTable(tmp_path / "e", "m", "d")
    with table.lock():
        parent = write_full_snapshot(table, ingest(range(6)), fake_embed, 2, record(), batch_size=4, keep_snapshots=3)
    store = DatasetStore(tmp_path / "datasets", row_group_rows=8)  # the fixture's store
    relabelled = [ImageRecord(f"img{v:03d}", png(v), (v + 1) % 3, "test" if v == 2 else None) for v in range(6)]
    second = store.resolve("d", store.ingest_records(relabelled, "d", description="relabelled").version)
    with table.lock():
        snapshot = write_incremental(table, parent, second, fake_embed, record(action="incremental"), batch_size=4,
                                     keep_snapshots=3)
    assert (snapshot.manifest.rows_reused, snapshot.manifest.rows_embedded) == (6, 0)
    got = snapshot.read().sort_by("id")
    want = second.read(columns=["id", "split", "label"]).sort_by("id")
    assert all(got.column(n).to_pylist() == want.column(n).to_pylist() for n in ("id", "split", "label"))
    assert got.column("label").to_pylist() != parent.read().sort_by("id").column("label").to_pylist()
    assert got.column("content_sha256").equals(parent.read().sort_by("id").column("content_sha256"))
    assert _vectors(got).keys() == _vectors(parent.read()).keys()
    assert all(_vectors(got)[k].tobytes() == v.tobytes() for k, v in _vectors(parent.read()).items())
