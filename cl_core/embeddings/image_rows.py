"""What an image version contributes to its embedding table: one row per image (id, split,
label, content_sha256) and the image's bytes as the model's input. The rows interface every
modality's rows module shares (`cl_core.embeddings.inputs` dispatches to it by the record's
"rows" part)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cl_core.datasets import DatasetVersion
from cl_core.datasets.content_hash import CONTENT_SHA256, content_sha256, iter_image_batches
from cl_core.embeddings.schema import IMAGE_KEYS

KEYS = IMAGE_KEYS
_COLUMNS = ["id", "split", "label", "image"]


def table_rows(dataset: DatasetVersion) -> int:
    """One table row per image."""
    return dataset.num_rows()


def key_batches(dataset: DatasetVersion, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The key columns of every image; the bytes are not read when the version stores its hashes."""
    for batch in iter_image_batches(dataset, batch_size, ["id", "split", "label"]):
        yield pa.record_batch(batch.select(KEYS.names).columns, schema=KEYS)


def input_batches(dataset: DatasetVersion, batch_size: int, only_ids: pa.Array | None = None) -> Iterator[pa.RecordBatch]:
    """The key columns plus the image of every row, or only of the ids in `only_ids`."""
    for batch in iter_image_batches(dataset, batch_size, _COLUMNS):
        for rows in parts_rows(batch, only_ids).to_batches():
            if rows.num_rows:
                yield rows


def part_columns(dataset: DatasetVersion) -> list[str]:
    """The part columns `parts_rows` needs; the stored hashes when the parts have them (versions
    ingested before the column have not)."""
    stored = dataset.files and CONTENT_SHA256 in pq.read_schema(dataset.files[0]).names
    return [*_COLUMNS, CONTENT_SHA256] if stored else list(_COLUMNS)


def part_ids(only_ids: pa.Array) -> pa.Array:
    """An image's table row has the image's id."""
    return only_ids


def parts_rows(batch: pa.RecordBatch | pa.Table, only_ids: pa.Array | None = None) -> pa.Table:
    """Each image row as it is, its hash computed when the part has none."""
    rows = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    if CONTENT_SHA256 not in rows.schema.names:
        rows = rows.append_column(CONTENT_SHA256, content_sha256(rows.column("image")))
    rows = rows.select([*KEYS.names, "image"])
    if only_ids is not None:
        rows = rows.filter(pc.is_in(rows.column("id"), value_set=only_ids))
    return rows
