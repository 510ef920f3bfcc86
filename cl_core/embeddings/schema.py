"""The columns of an embedding table, and the sentence rows a text dataset exports."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from cl_core.datasets.content_hash import CONTENT_SHA256, content_sha256

_HASH = pa.field(CONTENT_SHA256, pa.string(), nullable=False)
# The columns copied from the dataset beside each embedding; content_sha256 is the hash of the
# exact input the vector was computed from, so a later run can tell which vectors still hold.
IMAGE_KEYS = pa.schema(
    [pa.field("id", pa.string(), nullable=False), pa.field("split", pa.string()), pa.field("label", pa.int64()), _HASH]
)
TEXT_KEYS = pa.schema(
    [pa.field("id", pa.string(), nullable=False), pa.field("split", pa.string()), pa.field("text", pa.string()), _HASH]
)
LINEAGE_COLUMNS = ("model_name", "model_version", "dataset_version")


def embedding_schema(dim: int, keys: pa.Schema = IMAGE_KEYS) -> pa.Schema:
    return pa.schema([
        *keys,
        pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
        *(pa.field(name, pa.string()) for name in LINEAGE_COLUMNS),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ])


def sentence_rows(pairs: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Text pairs (id, split, text1, text2) -> one row per sentence: "<id>/1" for text1 and
    "<id>/2" for text2 where present, so a pair dataset exports every sentence it holds. The
    sentence's hash is computed here: the text is read anyway, as a column the table keeps."""
    for batch in pairs:
        second = batch.filter(pc.is_valid(batch.column("text2")))
        for suffix, rows, column in (("/1", batch, "text1"), ("/2", second, "text2")):
            if rows.num_rows:
                yield pa.record_batch([
                    pc.binary_join_element_wise(rows.column("id"), suffix, ""),
                    rows.column("split"),
                    rows.column(column),
                    content_sha256(rows.column(column)),
                ], schema=TEXT_KEYS)
