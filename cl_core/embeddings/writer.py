"""Write one snapshot: streamed batch by batch into a staging folder, then published."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cl_core.durable_files import fsync_dir
from cl_core.embeddings.errors import EmbeddingTableError
from cl_core.embeddings.manifest import SnapshotManifest, read_manifest, write_manifest
from cl_core.embeddings.schema import LINEAGE_COLUMNS
from cl_core.embeddings.snapshot_index import INDEX_FOLDER, IndexSettings, index_record
from cl_core.embeddings.table import (
    EmbeddingTable,
    Snapshot,
    new_snapshot_id,
)

Embed = Callable[[list], np.ndarray]


def _bad_vectors(vectors: pa.Array | pa.ChunkedArray) -> int:
    """Null vectors plus vectors holding a NaN or an infinity."""
    if isinstance(vectors, pa.ChunkedArray):
        return sum(_bad_vectors(chunk) for chunk in vectors.chunks)
    if len(vectors) == 0:
        return 0
    values = vectors.flatten().to_numpy(zero_copy_only=False).reshape(len(vectors) - vectors.null_count, -1)
    return vectors.null_count + int((~np.isfinite(values)).any(axis=1).sum())


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

    def __init__(self, table: EmbeddingTable, schema: pa.Schema, rows_per_file: int = 200_000,
                 index_settings: IndexSettings | None = None) -> None:
        self.table, self.schema, self.rows_per_file = table, schema, rows_per_file
        self.index_settings = index_settings or IndexSettings()
        self.snapshot_id = new_snapshot_id()
        self.staging = table.staging_path(self.snapshot_id)
        self.files: list[str] = []
        self.rows = self.bad_vectors = 0
        self._writer: pq.ParquetWriter | None = None
        self._writer_rows = 0

    def __enter__(self) -> SnapshotWriter:
        self.table.remove_leftovers()  # of runs killed before they published; the caller holds the lock
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
        self.bad_vectors += _bad_vectors(batch.column("embedding"))
        self._writer.write_batch(batch)
        self.rows += batch.num_rows
        self._writer_rows += batch.num_rows

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def adopt(self, folder: Path) -> pa.Table:
        """Make the Parquet files that others (Ray Data's write tasks) wrote into `folder`, a
        fresh folder inside the staging folder, parts of this snapshot, as if `write` had
        written their rows: each must have the table's schema; its rows and its null or
        non-finite vectors are counted by streaming it a row group at a time (memory does not
        grow with the file); it is then renamed to the next part-NNNNN.parquet and `folder` is
        removed. Returns the adopted rows' key columns (id, and entity where the table has it),
        after checking that no row appears twice (a retried write task must replace its file,
        never add a second copy).

        Raises:
            EmbeddingTableError: a file is unreadable or has another schema, or a row is
                duplicated; the snapshot cannot be published (the staging folder goes with the
                `with` block).
        """
        if folder.parent != self.staging:
            raise ValueError(f"{folder} is not a folder inside the staging folder {self.staging}")
        self._close()
        key_names = [name for name in ("entity", "id") if name in self.schema.names]
        keys: list[pa.RecordBatch] = []
        # No folder: the workers had no rows to write.
        for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
            try:
                with pq.ParquetFile(path, pre_buffer=False) as parquet:
                    if not parquet.schema_arrow.equals(self.schema, check_metadata=False):
                        raise EmbeddingTableError(
                            f"part {path} written for snapshot {self.snapshot_id} has schema "
                            f"{parquet.schema_arrow.to_string(show_schema_metadata=False)!r}, the table "
                            f"{self.schema.to_string(show_schema_metadata=False)!r}; not published".replace("\n", ", "))
                    for group in range(parquet.num_row_groups):
                        rows = parquet.read_row_group(group, columns=[*key_names, "embedding"])
                        self.bad_vectors += _bad_vectors(rows.column("embedding"))
                        self.rows += rows.num_rows
                        keys.extend(rows.select(key_names).to_batches())
            except EmbeddingTableError:
                raise
            except Exception as error:  # noqa: BLE001 - pyarrow raises several types for bad files
                raise EmbeddingTableError(f"part {path} written for snapshot {self.snapshot_id} is unreadable: "
                                          f"{error}".replace("\n", " ")) from None
            name = f"part-{len(self.files):05d}.parquet"
            os.rename(path, self.staging / name)
            self.files.append(name)
        shutil.rmtree(folder, ignore_errors=True)
        adopted = pa.Table.from_batches(keys, schema=pa.schema([self.schema.field(n) for n in key_names]))
        distinct = adopted.group_by(key_names).aggregate([]).num_rows
        if distinct != adopted.num_rows:
            raise EmbeddingTableError(f"snapshot {self.snapshot_id} of {self.table.path}: {adopted.num_rows - distinct} "
                                      "rows written by workers appear more than once; not published")
        return adopted

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
        """Finish the parts, build the nearest-neighbour index beside them (`snapshot_index`:
        an incremental snapshot, whose record names a parent and its `rows_reused`, updates the
        parent's), write the manifest (`record` holds its fields that the writer does not know:
        model, dataset, parent, counts, run ids, action), rename the folder into place, point
        CURRENT at it, then remove snapshots beyond the newest `keep_snapshots`."""
        self._close()
        if not self.files:  # no rows: still a readable, empty snapshot
            self.files.append("part-00000.parquet")
            pq.write_table(self.schema.empty_table(), self.staging / self.files[0])
        parent = self.table.path / record["parent"] if record.get("parent") else None
        parent_index = read_manifest(parent).index if parent is not None and parent.is_dir() else None
        index = index_record(self.staging, self.files, self.index_settings, parent, parent_index,
                             reused=int(record.get("rows_reused") or 0))
        written = [self.staging / name for name in self.files]
        written += [self.staging / entry["file"] for entry in index["groups"].values() if "file" in entry]
        for path in written:
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        if (self.staging / INDEX_FOLDER).is_dir():
            fsync_dir(self.staging / INDEX_FOLDER)
        manifest = SnapshotManifest(
            **record, snapshot=self.snapshot_id, rows=self.rows, files=list(self.files),
            dimension=self.schema.field("embedding").type.list_size,
            created_at=datetime.now(UTC).isoformat(), index=index,
        )
        write_manifest(self.staging, manifest)
        fsync_dir(self.staging)  # the parts' and manifest's names, before the folder is renamed into place
        final = self.table.path / self.snapshot_id
        os.rename(self.staging, final)
        fsync_dir(self.table.path)
        self.table.set_current(self.snapshot_id)
        self.table.prune(keep_snapshots)
        return Snapshot(final)


def embedded_batch(batch: pa.RecordBatch, embed: Embed, inputs: list, lineage: Mapping[str, str],
                   created: datetime, schema: pa.Schema) -> pa.RecordBatch:
    """A table batch of `batch`'s key columns and the vectors `embed(inputs)` (one input per
    row), after checking the model returned one vector of the table's dimension per row."""
    dim = schema.field("embedding").type.list_size
    vectors = np.asarray(embed(inputs), dtype=np.float32)
    if vectors.shape != (batch.num_rows, dim):
        raise ValueError(
            f"embedding of {batch.num_rows} rows returned shape {vectors.shape}, expected ({batch.num_rows}, {dim})"
        )
    return with_vectors(batch, vectors, lineage, created, schema)


def write_embedded(batches: Iterable[pa.RecordBatch], embed: Embed, writer: SnapshotWriter, input_column: str,
                   lineage: Mapping[str, str], created: datetime | None = None,
                   progress: Callable[[int], None] | None = None) -> int:
    """Embed each batch's `input_column` ("image" bytes or "text") and write its key columns
    with the vectors; returns the number of rows embedded."""
    created = created or datetime.now(UTC)
    done = 0
    for batch in batches:
        writer.write(embedded_batch(batch, embed, batch.column(input_column).to_pylist(), lineage, created,
                                    writer.schema))
        done += batch.num_rows
        if progress:
            progress(done)
    return done
