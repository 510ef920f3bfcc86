"""SnapshotWriter.adopt: part files written by others (Ray Data's write tasks) become a snapshot's
parts, counted and checked as if the writer had written them; the same publish follows."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cl_core.datasets import DatasetStore, TextPairRecord
from cl_core.embeddings import EmbeddingTable, EmbeddingTableError, SnapshotWriter, embedding_schema, with_vectors
from cl_core.embeddings.engine import LocalEngine
from cl_core.embeddings.inputs import input_batches, key_schema, part_columns, part_ids, parts_rows
from tests.cl_core.embeddings.conftest import LINEAGE, fake_embed, record

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def _record(dataset, rows):
    return {**record(dataset_version=dataset.version), "parent": None, "rows_embedded": rows, "rows_reused": 0,
            "rows_deleted": 0}


def _part_batches(dataset, batch_size, columns):
    """What a reader of the version's Parquet parts (a Ray Data read task) sees."""
    for path in dataset.files:
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns)


def _embedded(dataset, schema, batch_size=4):
    """The table batches a worker would write: the rows `parts_rows` builds from each batch."""
    for batch in _part_batches(dataset, batch_size, part_columns(dataset)):
        rows = parts_rows("image", batch).combine_chunks().to_batches()[0]
        yield with_vectors(rows, fake_embed(rows.column("image").to_pylist()), LINEAGE, CREATED, schema)


def _write_parts(folder, batches, schema):
    folder.mkdir()
    for i, batch in enumerate(batches):
        pq.write_table(pa.Table.from_batches([batch], schema=schema), folder / f"task-{i}.parquet")


def test_adopted_parts_publish_the_same_rows_as_the_local_writer(tmp_path, ingest):
    dataset = ingest(range(10))
    schema = embedding_schema(2, key_schema(dataset))
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d")
    with table.lock(), SnapshotWriter(table, schema) as writer:
        _write_parts(writer.staging / "workers", reversed(list(_embedded(dataset, schema))), schema)
        keys = writer.adopt(writer.staging / "workers")
        writer.check(10, 2)
        adopted = writer.publish(_record(dataset, 10), keep_snapshots=3)
    assert sorted(keys.column("id").to_pylist()) == [f"img{v:03d}" for v in range(10)]
    assert adopted.manifest.files == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert not any(p.name.startswith(".staging") for p in table.path.iterdir())

    with table.lock(), SnapshotWriter(table, schema) as writer:
        LocalEngine(fake_embed).embed_into(writer, dataset, LINEAGE, batch_size=3)
        local = writer.publish(_record(dataset, 10), keep_snapshots=3)
    columns = ["id", "split", "label", "content_sha256", "embedding"]
    assert adopted.read(columns).sort_by("id").equals(local.read(columns).sort_by("id"))


def test_adopt_counts_bad_vectors_and_refuses_duplicates_and_other_schemas(tmp_path, ingest):
    dataset = ingest(range(6))
    schema = embedding_schema(2, key_schema(dataset))
    table = EmbeddingTable(tmp_path / "embeddings", "m", "d")
    batch = next(_embedded(dataset, schema, batch_size=6))
    values = np.array(batch.column("embedding").to_pylist(), dtype=np.float32)
    values[2, 1] = np.nan
    bad = with_vectors(batch.drop_columns(["embedding"]), values, LINEAGE, CREATED, schema)
    with table.lock(), SnapshotWriter(table, schema) as writer:
        _write_parts(writer.staging / "workers", [bad], schema)
        writer.adopt(writer.staging / "workers")
        with pytest.raises(EmbeddingTableError, match="1 null or non-finite"):
            writer.check(6, 2)

    with table.lock(), SnapshotWriter(table, schema) as writer:
        _write_parts(writer.staging / "workers", [batch, batch.slice(1, 2)], schema)  # a task's rows twice
        with pytest.raises(EmbeddingTableError, match="2 rows written by workers appear more than once"):
            writer.adopt(writer.staging / "workers")

    other = embedding_schema(3, key_schema(dataset))
    with table.lock(), SnapshotWriter(table, schema) as writer:
        vectors = np.zeros((6, 3), dtype=np.float32)
        _write_parts(writer.staging / "workers", [with_vectors(batch, vectors, LINEAGE, CREATED, other)], other)
        with pytest.raises(EmbeddingTableError, match="task-0.parquet .* has schema"):
            writer.adopt(writer.staging / "workers")
    assert table.current() is None and not list(table.path.glob(".staging-*"))


def test_parts_rows_give_the_rows_input_batches_gives(ingest):
    dataset = ingest(range(9))
    wanted = pa.array(["img002", "img007"])
    local = pa.Table.from_batches(list(input_batches(dataset, 4, only_ids=wanted)))
    for columns in (part_columns(dataset), ["id", "split", "label", "image"]):  # hashes stored, or computed
        parts = pa.concat_tables(parts_rows("image", b, wanted) for b in _part_batches(dataset, 2, columns))
        assert parts.sort_by("id").to_pylist() == local.sort_by("id").to_pylist()


def test_text_parts_give_the_sentence_rows_input_batches_gives(tmp_path):
    """What a Ray read task sees of a text version, filtered by `part_ids` as the scan is, then
    built into sentence rows and kept by sentence id: the local engine's rows exactly."""
    store = DatasetStore(tmp_path / "datasets", row_group_rows=3)
    records = [TextPairRecord(f"p{i}", f"first {i}", f"second {i}" if i % 3 else None) for i in range(10)]
    dataset = store.resolve("t", store.ingest_text_records(records, "t", description="t").version)
    wanted = pa.array(["p1/2", "p3/1", "p4/1", "p4/2"])
    local = pa.Table.from_batches(list(input_batches(dataset, 4, only_ids=wanted)))
    scanned = pa.concat_tables(b for b in (pa.Table.from_batches([batch]) for batch in _part_batches(
        dataset, 2, part_columns(dataset))) if b.num_rows)
    scanned = scanned.filter(pa.compute.is_in(scanned.column("id"), value_set=part_ids("text", wanted)))
    rows = parts_rows("text", scanned, wanted)
    assert sorted(rows.column("id").to_pylist()) == ["p1/2", "p3/1", "p4/1", "p4/2"]
    assert rows.sort_by("id").to_pylist() == local.sort_by("id").to_pylist()
