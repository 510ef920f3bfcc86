"""Bring a table up to date: decide what a model and dataset version need against CURRENT,
and write an incremental snapshot that copies every vector whose input did not change."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cl_core.datasets import DatasetVersion
from cl_core.datasets.content_hash import CONTENT_SHA256
from cl_core.embeddings.engine import EmbedEngine, as_engine
from cl_core.embeddings.errors import EmbeddingTableError
from cl_core.embeddings.inputs import (
    key_batches,
    key_schema,
    row_keys,
    table_rows,
)
from cl_core.embeddings.manifest import SnapshotManifest
from cl_core.embeddings.schema import LINEAGE_COLUMNS, embedding_schema
from cl_core.embeddings.snapshot_index import IndexSettings
from cl_core.embeddings.table import EmbeddingTable, Snapshot
from cl_core.embeddings.writer import Embed, SnapshotWriter

UP_TO_DATE, INCREMENTAL, BACKFILL = "up_to_date", "incremental", "backfill"
# The run's model version is no longer its alias's target, or its dataset version no longer LATEST:
# it writes nothing (flows.reembed_flow), so the table never goes back to an older one.
SUPERSEDED = "superseded"
_ROW = "__parent_row"
# The parent is read this many rows at a time (whatever its row groups), so the copy holds one
# slice of the parent's vectors at a time.
COPY_ROWS = 65_536


def decide(current: SnapshotManifest | None, model_version: str, dataset_version: str) -> str:
    """up_to_date: CURRENT has this model and dataset version; incremental: the same model, another
    dataset version; backfill: another model version, or no snapshot yet."""
    if current is None or current.model_version != model_version:
        return BACKFILL
    return UP_TO_DATE if current.dataset_version == dataset_version else INCREMENTAL


@dataclass(frozen=True)
class ReusePlan:
    """Which dataset rows keep their parent vector (`reused`: the dataset's key columns plus the
    parent row to copy from, in parent row order) and which need the model (`to_embed`: their
    ids, or for users and items their row keys, `inputs.row_keys`)."""

    reused: pa.Table
    to_embed: pa.Array
    deleted: int


# The key columns that name a row: equal in the parent and the dataset for every reused row.
_IDENTITY = ("entity", "id")
# Key columns a reused row takes from the parent while its vector is copied, so the plan need not
# hold them: its identity and content_sha256 are equal by the match, and a text row's `text` is
# what its content_sha256 hashes. The others (split, label, title) can change without the input
# changing, so they come from the dataset.
_FROM_PARENT = {*_IDENTITY, CONTENT_SHA256, "text"}
_HEX = np.full(256, 255, np.uint8)
for _value, _char in enumerate(b"0123456789abcdef"):
    _HEX[_char] = _HEX[ord(chr(_char).upper())] = _value


def _digests(hashes: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The first 16 of the 32 bytes of each hex content_sha256, as (N, 2) uint64: a quarter of
    the string's memory. Two inputs of one row whose sha256 agree in 128 bits but differ
    (a changed input taken for unchanged) is as likely as guessing a 128-bit key. Values that
    are not 64 hex digits (none that this package writes) are hashed as strings first."""
    if isinstance(hashes, pa.ChunkedArray):
        hashes = hashes.combine_chunks()
    n = len(hashes)
    if n == 0:
        return np.zeros((0, 2), np.uint64)
    if hashes.type == pa.string() and not hashes.null_count:
        offsets = np.frombuffer(hashes.buffers()[1], np.int32)[hashes.offset : hashes.offset + n + 1]
        if (np.diff(offsets) == 64).all():
            hex_digits = np.frombuffer(hashes.buffers()[2], np.uint8)[offsets[0] : offsets[-1]].reshape(n, 64)
            nibbles = _HEX[hex_digits[:, :32]].reshape(n, 16, 2)
            if not (_HEX[hex_digits] == 255).any():
                return np.ascontiguousarray((nibbles[:, :, 0] << 4) | nibbles[:, :, 1]).view("<u8")
    digests = [hashlib.sha256(str(value).encode("utf-8")).digest()[:16] for value in hashes.to_pylist()]
    return np.frombuffer(b"".join(digests), "<u8").reshape(n, 2)


@dataclass
class _Keys:
    """One side of the join, compactly: row keys, content digests and, for the dataset, the
    key columns a reused row takes from it (`_FROM_PARENT`'s complement)."""

    keys: list[pa.Array]
    digests: list[np.ndarray]
    kept: list[pa.RecordBatch]

    @classmethod
    def collect(cls, batches, kept_columns: list[str] = ()) -> _Keys:
        side = cls([], [], [])
        for batch in batches:
            side.keys.append(row_keys(batch))
            side.digests.append(_digests(batch.column(CONTENT_SHA256)))
            if kept_columns:
                side.kept.append(pa.record_batch([batch.column(n) for n in kept_columns], names=list(kept_columns)))
        return side

    def row_keys(self) -> pa.Array:
        return pa.concat_arrays([k.combine_chunks() if isinstance(k, pa.ChunkedArray) else k for k in self.keys]) \
            if self.keys else pa.array([], pa.string())

    def all_digests(self) -> np.ndarray:
        return np.concatenate(self.digests) if self.digests else np.zeros((0, 2), np.uint64)


@dataclass(frozen=True)
class _Match:
    """For each parent row, the dataset row that reuses its vector (-1: none); the dataset rows
    to embed (their row keys); the parent rows whose key the dataset no longer has."""

    by_parent: np.ndarray
    to_embed: pa.Array
    deleted: int


def _match(dataset_keys: pa.Array, dataset_digests: np.ndarray, parent_keys: pa.Array,
           parent_digests: np.ndarray) -> _Match:
    at = pc.fill_null(pc.index_in(dataset_keys, value_set=parent_keys), -1).to_numpy(zero_copy_only=False)
    known = np.flatnonzero(at >= 0)
    same = known[(dataset_digests[known] == parent_digests[at[known]]).all(axis=1)]
    by_parent = np.full(len(parent_keys), -1, np.int64)
    by_parent[at[same]] = same
    embed = np.ones(len(dataset_keys), bool)
    embed[same] = False
    still_there = np.zeros(len(parent_keys), bool)
    still_there[at[known]] = True
    return _Match(by_parent, dataset_keys.filter(pa.array(embed)), int(len(parent_keys) - still_there.sum()))


def plan_reuse(dataset_keys: pa.Table, parent_keys: pa.Table) -> ReusePlan:
    """Join the dataset's rows with the parent's on (row key, content_sha256): a match is reused,
    a new key or a changed input is embedded, a parent key missing from the dataset is deleted.
    (`write_incremental` streams both sides through the same match instead of taking tables.)"""
    dataset_rows = row_keys(dataset_keys)
    dataset_rows = dataset_rows.combine_chunks() if isinstance(dataset_rows, pa.ChunkedArray) else dataset_rows
    parent_rows = row_keys(parent_keys)
    parent_rows = parent_rows.combine_chunks() if isinstance(parent_rows, pa.ChunkedArray) else parent_rows
    match = _match(dataset_rows, _digests(dataset_keys.column(CONTENT_SHA256)), parent_rows,
                   _digests(parent_keys.column(CONTENT_SHA256)))
    parent_rows_reused = np.flatnonzero(match.by_parent >= 0)
    reused = dataset_keys.take(pa.array(match.by_parent[parent_rows_reused]))
    return ReusePlan(reused.append_column(_ROW, pa.array(parent_rows_reused)), match.to_embed, match.deleted)


def _parent_batches(parent: Snapshot, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The parent's rows, only `columns`, at most COPY_ROWS at a time, in stored order (the
    order of its row numbers); a corrupt part file fails with the snapshot's path named."""
    try:
        for file in parent.files:
            with pq.ParquetFile(file, pre_buffer=False) as parquet:
                yield from parquet.iter_batches(batch_size=COPY_ROWS, columns=columns, use_threads=False)
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise EmbeddingTableError(f"snapshot {parent.path} has an unreadable part file: {error}".replace("\n", " ")) from None


def _reused_batches(by_parent: np.ndarray, kept: pa.Table, parent: Snapshot, schema: pa.Schema):
    """The reused rows in parent order: read the parent a slice at a time with only the
    columns a reused row takes from it (its identity, content_sha256 and, for text, the text;
    the vector; the lineage: the model and dataset version and time the vector was computed at)
    and take the rows some dataset row reuses, with that row's other key columns (`kept`, by
    dataset row). The parent's vectors are never all in memory: one slice's at a time."""
    key_names = schema.names[: schema.get_field_index("embedding")]
    from_parent = [n for n in key_names if n in _FROM_PARENT]
    copied = ["embedding", *LINEAGE_COLUMNS, "created_at"]
    start = 0
    for batch in _parent_batches(parent, [*from_parent, *copied]):
        rows = by_parent[start : start + batch.num_rows]
        start += batch.num_rows
        take = np.flatnonzero(rows >= 0)
        if not len(take):
            continue
        taken = batch.take(pa.array(take))
        theirs = kept.take(pa.array(rows[take]))
        columns = [taken.column(n) if n in _FROM_PARENT else theirs.column(n) for n in key_names]
        yield from pa.Table.from_arrays([*columns, *(taken.column(n) for n in copied)], schema=schema).to_batches()
    if start != len(by_parent):
        raise EmbeddingTableError(f"snapshot {parent.path} changed while it was read: {start} rows, "
                                  f"{len(by_parent)} before")


def write_incremental(
    table: EmbeddingTable,
    parent: Snapshot,
    dataset: DatasetVersion,
    embed: Embed | EmbedEngine,
    record: Mapping[str, Any],
    *,
    batch_size: int,
    keep_snapshots: int,
    progress: Callable[[int], None] | None = None,
    index_settings: IndexSettings | None = None,
) -> Snapshot:
    """A new snapshot of `dataset` for the parent's model: the parent's vectors of unchanged rows
    (copied here, in parent order), then the model's for new and changed ones (`embed`: a
    function run here or an engine, `cl_core.embeddings.engine`); checked and published as
    CURRENT. The caller holds `table.lock()`.

    Memory: the plan holds each side's row keys and content digests (16 bytes a row) and the
    dataset's key columns that are not the parent's to give (split, label, title); the vectors
    are copied COPY_ROWS parent rows at a time, so the parent is never read whole."""
    dimension = parent.manifest.dimension
    keys = key_schema(dataset)
    schema = embedding_schema(dimension, keys)
    identity = [n for n in _IDENTITY if n in keys.names]
    parent_side = _Keys.collect(_parent_batches(parent, [*identity, CONTENT_SHA256]))
    parent_keys, parent_digests = parent_side.row_keys(), parent_side.all_digests()
    del parent_side
    kept_names = [n for n in keys.names if n not in _FROM_PARENT]
    dataset_side = _Keys.collect(key_batches(dataset, batch_size), kept_names)
    match = _match(dataset_side.row_keys(), dataset_side.all_digests(), parent_keys, parent_digests)
    kept = pa.Table.from_batches(dataset_side.kept, schema=pa.schema([keys.field(n) for n in kept_names]))
    del dataset_side, parent_keys, parent_digests
    lineage = {"model_name": record["model_name"], "model_version": record["model_version"], "dataset_version": dataset.version}
    with SnapshotWriter(table, schema, index_settings=index_settings) as writer:
        for batch in _reused_batches(match.by_parent, kept, parent, schema):
            writer.write(batch)
        reused = writer.rows
        del kept
        embedded = 0
        if len(match.to_embed):
            embedded = len(as_engine(embed).embed_into(writer, dataset, lineage, batch_size=batch_size,
                                                       only_keys=match.to_embed, progress=progress))
        writer.check(table_rows(dataset), dimension)
        return writer.publish({
            **record, "parent": parent.id,
            "rows_embedded": embedded, "rows_reused": reused, "rows_deleted": match.deleted,
        }, keep_snapshots)
