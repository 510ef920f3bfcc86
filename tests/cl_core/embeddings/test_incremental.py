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
