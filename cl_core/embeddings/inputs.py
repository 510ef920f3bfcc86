"""What a dataset version contributes to its embedding table: one row per image, one per
sentence of a text version, or one per user and per item of an interactions version
(`cl_core.embeddings.interaction_rows`), with the key columns the table keeps and the model's
input."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cl_core.datasets import DatasetVersion
from cl_core.datasets.content_hash import CONTENT_SHA256, content_sha256, iter_image_batches
from cl_core.embeddings import interaction_rows
from cl_core.embeddings.schema import IMAGE_KEYS, TEXT_KEYS, sentence_rows

_PAIR_COLUMNS = ["id", "split", "text1", "text2"]
_IMAGE_COLUMNS = ["id", "split", "label", "image"]


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
        batches = dataset.iter_batches(batch_size=batch_size, columns=_PAIR_COLUMNS)
    else:
        batches = iter_image_batches(dataset, batch_size, _IMAGE_COLUMNS)
    for batch in batches:
        for rows in parts_rows(dataset.kind, batch, only_ids).to_batches():
            if rows.num_rows:
                yield rows


def part_columns(dataset: DatasetVersion) -> list[str]:
    """The columns of an image or text version's Parquet parts that `parts_rows` needs: what a
    reader elsewhere (a Ray Data read task) loads, and no more. An image version's stored
    hashes are read when its parts have them (versions ingested before the column have not)."""
    if dataset.kind == "interactions":
        raise TypeError(f"{dataset!r}: users' and items' rows come from `input_batches`, not from the parts")
    if dataset.kind == "text":
        return list(_PAIR_COLUMNS)
    stored = dataset.files and CONTENT_SHA256 in pq.read_schema(dataset.files[0]).names
    return [*_IMAGE_COLUMNS, CONTENT_SHA256] if stored else list(_IMAGE_COLUMNS)


def part_ids(kind: str, only_ids: pa.Array) -> pa.Array:
    """The ids of the version's rows (images, text pairs) that hold the table rows `only_ids`:
    a text pair "<id>" holds the sentences "<id>/1" and "<id>/2" (`sentence_rows`). What a
    reader filters the parts by, so that only those rows are read."""
    if kind != "text":
        return only_ids
    return pc.unique(pc.replace_substring_regex(only_ids, pattern="/[12]$", replacement=""))


def parts_rows(kind: str, batch: pa.RecordBatch | pa.Table, only_ids: pa.Array | None = None) -> pa.Table:
    """Table rows with the model's input from one batch of an image or text version's parts
    (`part_columns`): an image row as it is (its hash computed when the part has none), a text
    pair as one row per sentence (`sentence_rows`); only the rows whose id is in `only_ids` when
    given. Each batch stands alone, so any reader's batches, in any order, give the same rows."""
    if kind == "text":
        pairs = batch.to_batches() if isinstance(batch, pa.Table) else [batch]
        rows = pa.Table.from_batches(list(sentence_rows(pairs)), schema=TEXT_KEYS)
    else:
        rows = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if CONTENT_SHA256 not in rows.schema.names:
            rows = rows.append_column(CONTENT_SHA256, content_sha256(rows.column("image")))
        rows = rows.select([*IMAGE_KEYS.names, "image"])
    if only_ids is not None:
        rows = rows.filter(pc.is_in(rows.column("id"), value_set=only_ids))
    return rows
