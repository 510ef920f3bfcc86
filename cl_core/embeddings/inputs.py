"""What a dataset version contributes to its embedding table: one row per image, one per
sentence of a text version, or one per user and per item of an interactions version
(`cl_core.embeddings.interaction_rows`), with the key columns the table keeps and the model's
input."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from cl_core.datasets import DatasetVersion
from cl_core.datasets.content_hash import iter_image_batches
from cl_core.embeddings import interaction_rows
from cl_core.embeddings.schema import IMAGE_KEYS, TEXT_KEYS, sentence_rows

_PAIR_COLUMNS = ["id", "split", "text1", "text2"]


def key_schema(dataset: DatasetVersion) -> pa.Schema:
    if dataset.kind == "interactions":
        return interaction_rows.INTERACTION_KEYS
    return TEXT_KEYS if dataset.kind == "text" else IMAGE_KEYS


def input_column(dataset: DatasetVersion) -> str:
    """The column the model embeds: "text", "image" or (interactions) "input"."""
    if dataset.kind == "interactions":
        return interaction_rows.INPUT_COLUMN
    return "text" if dataset.kind == "text" else "image"


def table_rows(dataset: DatasetVersion) -> int:
    """Rows the table holds for this version: images, sentences (text1 plus each text2), or
    users plus items."""
    if dataset.kind == "interactions":
        return interaction_rows.entity_count(dataset)
    if dataset.kind == "text":
        return dataset.num_rows() + dataset.pairs
    return dataset.num_rows()


def row_keys(rows: pa.Table | pa.RecordBatch) -> pa.Array | pa.ChunkedArray:
    """What identifies a row of a table: its id, or for users and items "<entity>:<id>" (a user
    and an item may share an id)."""
    if "entity" in rows.schema.names:
        return interaction_rows.row_keys(rows)
    return rows.column("id")


def key_batches(dataset: DatasetVersion, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The key columns of every table row (id, split, label or text, content_sha256). Image
    bytes are not read when the version stores its hashes."""
    if dataset.kind == "interactions":
        yield from interaction_rows.entity_batches(dataset, batch_size, with_input=False)
        return
    if dataset.kind == "text":
        yield from sentence_rows(dataset.iter_batches(batch_size=batch_size, columns=_PAIR_COLUMNS))
        return
    for batch in iter_image_batches(dataset, batch_size, ["id", "split", "label"]):
        yield pa.record_batch(batch.select(IMAGE_KEYS.names).columns, schema=IMAGE_KEYS)


def input_batches(dataset: DatasetVersion, batch_size: int, only_ids: pa.Array | None = None) -> Iterator[pa.RecordBatch]:
    """The key columns plus the model's input of every table row, or only of the rows whose
    key (`row_keys`) is in `only_ids`."""
    if dataset.kind == "interactions":
        yield from interaction_rows.entity_batches(dataset, batch_size, with_input=True, only_keys=only_ids)
        return
    if dataset.kind == "text":
        batches = sentence_rows(dataset.iter_batches(batch_size=batch_size, columns=_PAIR_COLUMNS))
    else:
        batches = iter_image_batches(dataset, batch_size, ["id", "split", "label", "image"])
    for batch in batches:
        if only_ids is not None:
            batch = batch.filter(pc.is_in(batch.column("id"), value_set=only_ids))
        if batch.num_rows:
            yield batch
