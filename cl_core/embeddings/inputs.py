"""What a dataset version contributes to its embedding table: one row per image, or one per
sentence of a text version, with the key columns the table keeps and the model's input."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from cl_core.datasets import DatasetVersion
from cl_core.datasets.content_hash import iter_image_batches
from cl_core.embeddings.schema import IMAGE_KEYS, TEXT_KEYS, sentence_rows

_PAIR_COLUMNS = ["id", "split", "text1", "text2"]


def key_schema(dataset: DatasetVersion) -> pa.Schema:
    return TEXT_KEYS if dataset.kind == "text" else IMAGE_KEYS


def input_column(dataset: DatasetVersion) -> str:
    """The column the model embeds: "text" or "image"."""
    return "text" if dataset.kind == "text" else "image"


def table_rows(dataset: DatasetVersion) -> int:
    """Rows the table holds for this version: images, or sentences (text1 plus each text2)."""
    if dataset.kind == "text":
        return dataset.num_rows() + dataset.pairs
    return dataset.num_rows()


def key_batches(dataset: DatasetVersion, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The key columns of every table row (id, split, label or text, content_sha256). Image
    bytes are not read when the version stores its hashes."""
    if dataset.kind == "text":
        yield from sentence_rows(dataset.iter_batches(batch_size=batch_size, columns=_PAIR_COLUMNS))
        return
    for batch in iter_image_batches(dataset, batch_size, ["id", "split", "label"]):
        yield pa.record_batch(batch.select(IMAGE_KEYS.names).columns, schema=IMAGE_KEYS)


def input_batches(dataset: DatasetVersion, batch_size: int, only_ids: pa.Array | None = None) -> Iterator[pa.RecordBatch]:
    """The key columns plus the model's input of every table row, or only of the rows whose
    id is in `only_ids`."""
    if dataset.kind == "text":
        batches = sentence_rows(dataset.iter_batches(batch_size=batch_size, columns=_PAIR_COLUMNS))
    else:
        batches = iter_image_batches(dataset, batch_size, ["id", "split", "label", "image"])
    for batch in batches:
        if only_ids is not None:
            batch = batch.filter(pc.is_in(batch.column("id"), value_set=only_ids))
        if batch.num_rows:
            yield batch
