"""What a dataset version contributes to its embedding table: one row per image, one per
sentence of a text version, or one per user and per item of an interactions version, with the
key columns the table keeps and the model's input. Each modality's rows module builds them
(`cl_core.embeddings.image_rows`, `text_rows`, `interaction_rows`: one interface), named by the
record's "rows" part; this module picks it by the version's kind."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pyarrow as pa

from cl_core.datasets import DatasetVersion
from cl_core.embeddings import interaction_rows
from cl_core.modalities import modality


def _rows(kind: str) -> ModuleType:
    return modality(kind).part("rows")


def key_schema(dataset: DatasetVersion) -> pa.Schema:
    return _rows(dataset.kind).KEYS


def input_column(dataset: DatasetVersion) -> str:
    """The column the model embeds: "text", "image" or (interactions) "input"."""
    return modality(dataset.kind).input_column


def table_rows(dataset: DatasetVersion) -> int:
    """Rows the table holds for this version: images, sentences (text1 plus each text2), or
    users plus items."""
    return _rows(dataset.kind).table_rows(dataset)


def row_keys(rows: pa.Table | pa.RecordBatch) -> pa.Array | pa.ChunkedArray:
    """What identifies a row of a table: its id, or for users and items "<entity>:<id>" (a user
    and an item may share an id)."""
    if "entity" in rows.schema.names:
        return interaction_rows.row_keys(rows)
    return rows.column("id")


def key_batches(dataset: DatasetVersion, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The key columns of every table row (id, split, label or text, content_sha256). Image
    bytes are not read when the version stores its hashes."""
    yield from _rows(dataset.kind).key_batches(dataset, batch_size)


def input_batches(dataset: DatasetVersion, batch_size: int, only_ids: pa.Array | None = None) -> Iterator[pa.RecordBatch]:
    """The key columns plus the model's input of every table row, or only of the rows whose
    key (`row_keys`) is in `only_ids`."""
    yield from _rows(dataset.kind).input_batches(dataset, batch_size, only_ids)


def part_columns(dataset: DatasetVersion) -> list[str]:
    """The columns of an image or text version's Parquet parts that `parts_rows` needs: what a
    reader elsewhere (a Ray Data read task) loads, and no more. An image version's stored
    hashes are read when its parts have them (versions ingested before the column have not)."""
    return _rows(dataset.kind).part_columns(dataset)


def part_ids(kind: str, only_ids: pa.Array) -> pa.Array:
    """The ids of the version's rows (images, text pairs) that hold the table rows `only_ids`:
    a text pair "<id>" holds the sentences "<id>/1" and "<id>/2" (`sentence_rows`). What a
    reader filters the parts by, so that only those rows are read."""
    return _rows(kind).part_ids(only_ids)


def parts_rows(kind: str, batch: pa.RecordBatch | pa.Table, only_ids: pa.Array | None = None) -> pa.Table:
    """Table rows with the model's input from one batch of an image or text version's parts
    (`part_columns`): an image row as it is (its hash computed when the part has none), a text
    pair as one row per sentence (`sentence_rows`); only the rows whose id is in `only_ids` when
    given. Each batch stands alone, so any reader's batches, in any order, give the same rows."""
    return _rows(kind).parts_rows(batch, only_ids)
