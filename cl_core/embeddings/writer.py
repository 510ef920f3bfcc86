"""Write one snapshot: streamed batch by batch into a staging folder, then published."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cl_core.durable_files import fsync_dir
from cl_core.embeddings.errors import EmbeddingTableError
from cl_core.embeddings.manifest import SnapshotManifest, write_manifest
from cl_core.embeddings.schema import LINEAGE_COLUMNS
from cl_core.embeddings.table import (
    EmbeddingTable,
    Snapshot,
    new_snapshot_id,
)

Embed = Callable[[list], np.ndarray]


def with_vectors(keys: pa.RecordBatch, vectors: np.ndarray | pa.Array, lineage: Mapping[str, str],
                 created: datetime, schema: pa.Schema) -> pa.RecordBatch:
    """A table batch: the dataset's key columns, the vectors (N, D) and the lineage columns."""
    dim = schema.field("embedding").type.list_size
    if isinstance(vectors, np.ndarray):
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1)), dim)
    n = keys.num_rows
    key_names = schema.names[: schema.get_field_index("embedding")]
    return pa.record_batch([
        *(keys.column(name) for name in key_names),
        vectors,
        *(pa.repeat(pa.scalar(lineage[name], pa.string()), n) for name in LINEAGE_COLUMNS),
        pa.repeat(pa.scalar(created, pa.timestamp("us", tz="UTC")), n),
    ], schema=schema)


class SnapshotWriter:
    """Rows into `table.staging_path(id)`, a new part file every `rows_per_file` rows (a
    Parquet writer keeps every row group's metadata until it closes), so memory does not grow
    with the row count. `publish` makes it a snapshot and points CURRENT at it; leaving the
    `with` block without publishing removes the staging folder.

    It counts null and non-finite vectors as they are written, for the checks before publish.
    """

    def __init__(self, table: EmbeddingTable, schema: pa.Schema, rows_per_file: int = 200_000) -> None:
        self.table, self.schema, self.rows_per_file = table, schema, rows_per_file
        self.snapshot_id = new_snapshot_id()
        self.staging = table.staging_path(self.snapshot_id)
        self.files: list[str] = []
        self.rows = self.bad_vectors = 0
        self._writer: pq.ParquetWriter | None = None
        self._writer_rows = 0

    def __enter__(self) -> SnapshotWriter:
        self.staging.mkdir(parents=True)
        return self

    def __exit__(self, *exc_info) -> None:
        self._close()
        shutil.rmtree(self.staging, ignore_errors=True)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._writer is None or self._writer_rows >= self.rows_per_file:
            self._close()
            name = f"part-{len(self.files):05d}.parquet"
            self._writer = pq.ParquetWriter(self.staging / name, self.schema)
            self.files.append(name)
            self._writer_rows = 0
        vectors = batch.column("embedding")
        values = vectors.flatten().to_numpy(zero_copy_only=False).reshape(batch.num_rows, -1)
        self.bad_vectors += vectors.null_count + int((~np.isfinite(values)).any(axis=1).sum())
        self._writer.write_batch(batch)
        self.rows += batch.num_rows
        self._writer_rows += batch.num_rows

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def check(self, expected_rows: int, dimension: int) -> None:
        """Refuse to publish a snapshot that is not whole: wrong row count, wrong dimension,
        or any null or non-finite vector."""
        where = f"snapshot {self.snapshot_id} of {self.table.path}"
        if self.rows != expected_rows:
            raise EmbeddingTableError(f"{where} holds {self.rows} rows, the dataset {expected_rows}; not published")
        if self.schema.field("embedding").type.list_size != dimension:
            stored = self.schema.field("embedding").type.list_size
            raise EmbeddingTableError(f"{where} has dimension {stored}, the model {dimension}; not published")
        if self.bad_vectors:
            raise EmbeddingTableError(f"{where} has {self.bad_vectors} null or non-finite vectors; not published")

    def publish(self, record: Mapping[str, Any], keep_snapshots: int) -> Snapshot:
        """Finish the parts, write the manifest (`record` holds its fields that the writer does
        not know: model, dataset, parent, counts, run ids, action), rename the folder into
        place, point CURRENT at it, then remove snapshots beyond the newest `keep_snapshots`."""
        self._close()
        if not self.files:  # no rows: still a readable, empty snapshot
            self.files.append("part-00000.parquet")
            pq.write_table(self.schema.empty_table(), self.staging / self.files[0])
        for name in self.files:
            with open(self.staging / name, "rb") as handle:
                os.fsync(handle.fileno())
        manifest = SnapshotManifest(
            **record, snapshot=self.snapshot_id, rows=self.rows, files=list(self.files),
            dimension=self.schema.field("embedding").type.list_size,
            created_at=datetime.now(UTC).isoformat(),
        )
        write_manifest(self.staging, manifest)
        final = self.table.path / self.snapshot_id
        os.rename(self.staging, final)
        fsync_dir(self.table.path)
        self.table.set_current(self.snapshot_id)
        self.table.prune(keep_snapshots)
        return Snapshot(final)


def write_embedded(batches: Iterable[pa.RecordBatch], embed: Embed, writer: SnapshotWriter, input_column: str,
                   lineage: Mapping[str, str], created: datetime | None = None,
                   progress: Callable[[int], None] | None = None) -> int:
    """Embed each batch's `input_column` ("image" bytes or "text") and write its key columns
    with the vectors; returns the number of rows embedded."""
    created = created or datetime.now(UTC)
    dim = writer.schema.field("embedding").type.list_size
    done = 0
    for batch in batches:
        vectors = np.asarray(embed(batch.column(input_column).to_pylist()), dtype=np.float32)
        if vectors.shape != (batch.num_rows, dim):
            raise ValueError(
                f"embedding of {batch.num_rows} rows returned shape {vectors.shape}, expected ({batch.num_rows}, {dim})"
            )
        writer.write(with_vectors(batch, vectors, lineage, created, writer.schema))
        done += batch.num_rows
        if progress:
            progress(done)
    return done
