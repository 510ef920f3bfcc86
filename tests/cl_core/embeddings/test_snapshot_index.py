"""Every published snapshot carries its nearest-neighbour index: built in staging by a child
process, recorded and checked in the manifest, updated from the parent's by an incremental
snapshot, and refused (CURRENT unchanged) when it cannot be built."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from cl_core.embeddings import (
    EmbeddingTable,
    EmbeddingTableError,
    SnapshotWriter,
    embedding_schema,
    with_vectors,
    write_full_snapshot,
)
from cl_core.embeddings.incremental import write_incremental
from cl_core.embeddings.schema import IMAGE_KEYS
from cl_core.embeddings.snapshot_index import IndexSettings
from cl_core.embeddings.vector_index import row_keys
from cl_core.search import SnapshotSearch
from tests.cl_core.embeddings.conftest import record

GRAPH = IndexSettings(exact_max_rows=20, update_max_fraction=0.5)  # tiny tables get a graph too


def spread_embed(images: list[bytes]) -> np.ndarray:
    """A deterministic 'model' with distinct unit vectors: 8 numbers seeded by the image bytes."""
    rows = np.stack([np.random.default_rng(zlib.crc32(b)).standard_normal(8) for b in images])
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def export(table, dataset, settings=None):
    with table.lock():
        return write_full_snapshot(table, dataset, spread_embed, 8, record(dataset_version=dataset.version), batch_size=16,
                                   keep_snapshots=3, index_settings=settings)


def own_rank(search: SnapshotSearch, ids: list[str]) -> list[str]:
    """The top hit of each row's own vector."""
    return [hits[0].id for hits in search.by_vectors(search.vectors_of(ids), k=1)]


def test_a_small_table_is_searched_exactly_and_needs_no_file(tmp_path, ingest):
    dataset = ingest(range(10))
    snapshot = export(EmbeddingTable(tmp_path / "e", "m", "d"), dataset)
    assert snapshot.manifest.index == {"groups": {"rows": {"engine": "exact", "rows": 10}}}
    assert not (snapshot.path / "index").exists()
    search = SnapshotSearch(snapshot)
    vectors = search.vectors_of([f"img{v:03d}" for v in range(10)])
    hits = search.by_ids(["img004"], k=3)[0]
    expected = sorted((i for i in range(10) if i != 4), key=lambda i: -float(vectors[i] @ vectors[4]))[:3]
    assert [h.id for h in hits] == [f"img{i:03d}" for i in expected]
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].row == {"split": "train", "label": expected[0] % 3}


def test_a_large_group_gets_a_graph_that_finds_every_row(tmp_path, ingest):
    dataset = ingest(range(60))
    snapshot = export(EmbeddingTable(tmp_path / "e", "m", "d"), dataset, GRAPH)
    entry = snapshot.manifest.index["groups"]["rows"]
    assert (entry["engine"], entry["rows"], entry["file"], entry["how"]) == ("usearch-hnsw", 60, "index/rows.usearch", "built")
    assert (snapshot.path / entry["file"]).stat().st_size == entry["bytes"] and len(entry["sha256"]) == 64
    search = SnapshotSearch(snapshot)
    assert search.describe()["groups"] == {"rows": {"rows": 60, "engine": "usearch-hnsw"}}
    ids = [f"img{v:03d}" for v in range(60)]
    assert own_rank(search, ids) == ids


def test_an_incremental_snapshot_updates_its_parents_graph(tmp_path, ingest):
    table = EmbeddingTable(tmp_path / "e", "m", "d")
    parent = export(table, ingest(range(60)), GRAPH)
    changed = ingest([*range(2, 60), 100, 101, 102])  # img000 and img001 deleted, three new rows
    with table.lock():
        child = write_incremental(table, parent, changed, spread_embed, record(dataset_version=changed.version),
                                  batch_size=16, keep_snapshots=3, index_settings=GRAPH)
    entry = child.manifest.index["groups"]["rows"]
    assert entry["how"] == f"updated from {parent.id}: 2 removed, 3 added" and entry["rows"] == 61
    search = SnapshotSearch(child)
    ids = [f"img{v:03d}" for v in [*range(2, 60), 100, 101, 102]]
    assert own_rank(search, ids) == ids
    everything = search.by_vectors(search.vectors_of(ids), k=61)
    assert {h.id for hits in everything for h in hits} == set(ids)  # the deleted rows are gone from the graph


def test_many_changed_rows_rebuild_the_graph(tmp_path, ingest):
    table = EmbeddingTable(tmp_path / "e", "m", "d")
    parent = export(table, ingest(range(60)), GRAPH)
    changed = ingest([*range(30), *range(200, 240)])
    with table.lock():
        child = write_incremental(table, parent, changed, spread_embed, record(dataset_version=changed.version),
                                  batch_size=16, keep_snapshots=3, index_settings=GRAPH)
    assert child.manifest.index["groups"]["rows"]["how"] == "built"
    ids = [f"img{v:03d}" for v in [*range(30), *range(200, 240)]]
    assert own_rank(SnapshotSearch(child), ids) == ids


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_missing_or_corrupt_index_file_is_named(tmp_path, ingest, damage):
    snapshot = export(EmbeddingTable(tmp_path / "e", "m", "d"), ingest(range(30)), GRAPH)
    path = snapshot.path / "index" / "rows.usearch"
    if damage == "missing":
        path.unlink()
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    with pytest.raises(EmbeddingTableError, match=f"index file {path} of snapshot {snapshot.id} is {damage}"):
        SnapshotSearch(snapshot)


def test_an_index_that_cannot_be_built_is_not_published(tmp_path, ingest):
    """Two rows under one id cannot both be keyed: the build fails, CURRENT stays where it was."""
    table = EmbeddingTable(tmp_path / "e", "m", "d")
    before = export(table, ingest(range(5)))
    schema = embedding_schema(8, IMAGE_KEYS)
    keys = pa.record_batch([pa.array(["a"] * 30), pa.array(["train"] * 30), pa.array(range(30), pa.int64()),
                            pa.array(["0" * 64] * 30)], schema=IMAGE_KEYS)
    lineage = {"model_name": "m", "model_version": "3", "dataset_version": "v"}
    with table.lock(), SnapshotWriter(table, schema, index_settings=GRAPH) as writer:
        writer.write(with_vectors(keys, spread_embed([bytes([i]) for i in range(30)]), lineage, datetime.now(UTC), schema))
        with pytest.raises(EmbeddingTableError, match="could not be built: .*two rows share the key of id 'a'.*not published"):
            writer.publish({**record(), "parent": before.id, "rows_embedded": 30, "rows_reused": 0, "rows_deleted": 0}, 3)
    assert table.current_id() == before.id
    assert sorted(p.name for p in table.path.iterdir()) == sorted([".lock", "CURRENT", before.id])


def test_a_snapshot_published_before_indexes_is_searched_exactly(tmp_path, ingest):
    snapshot = export(EmbeddingTable(tmp_path / "e", "m", "d"), ingest(range(12)))
    manifest = json.loads((snapshot.path / "manifest.json").read_text())
    del manifest["index"]
    (snapshot.path / "manifest.json").write_text(json.dumps(manifest))
    table = EmbeddingTable(tmp_path / "e", "m", "d")
    old = table.current()
    assert old.manifest.index is None
    search = SnapshotSearch(old)
    assert search.describe()["groups"] == {"rows": {"rows": 12, "engine": "exact"}}
    assert [h.id for h in search.by_vectors(search.vectors_of(["img003"]), k=1)[0]] == ["img003"]


def test_bad_queries_are_refused_with_the_reason(tmp_path, ingest):
    search = SnapshotSearch(export(EmbeddingTable(tmp_path / "e", "m", "d"), ingest(range(5))))
    with pytest.raises(ValueError, match="holds 8-d vectors; the query has shape \\(1, 3\\)"):
        search.by_vectors(np.zeros(3), k=1)
    with pytest.raises(ValueError, match="k must be between 1 and 1000, got 0"):
        search.by_vectors(np.zeros(8), k=0)
    with pytest.raises(ValueError, match="NaN"):
        search.by_vectors(np.full(8, np.nan), k=1)
    with pytest.raises(LookupError, match="id 'nope' has no row in snapshot"):
        search.by_ids(["nope"], k=1)
    assert row_keys(["img001"])[0] in search.groups["rows"].sorted_keys
