"""Write an embedding table: streamed batch by batch, published atomically."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

Embed = Callable[[list], np.ndarray]

# The columns copied from the dataset beside each embedding.
IMAGE_KEYS = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("split", pa.string()), pa.field("label", pa.int64())])
TEXT_KEYS = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("split", pa.string()), pa.field("text", pa.string())])


def embedding_schema(dim: int, keys: pa.Schema = IMAGE_KEYS) -> pa.Schema:
    return pa.schema([
        *keys,
        pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("dataset_version", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ])


def sentence_rows(pairs: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Text pairs (id, split, text1, text2) -> one row per sentence: "<id>/1" for text1 and
    "<id>/2" for text2 where present, so a pair dataset exports every sentence it holds."""
    for batch in pairs:
        has_second = pc.is_valid(batch.column("text2"))
        second = batch.filter(has_second)
        yield pa.record_batch([
            pc.binary_join_element_wise(batch.column("id"), "/1", ""),
            batch.column("split"),
            batch.column("text1"),
        ], schema=TEXT_KEYS)
        if second.num_rows:
            yield pa.record_batch([
                pc.binary_join_element_wise(second.column("id"), "/2", ""),
                second.column("split"),
                second.column("text2"),
            ], schema=TEXT_KEYS)


def publish(staging: Path, target: Path) -> None:
    """Swap `staging` in at `target` so readers see the old table or the new one, never half."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        staging.rename(target)
        return
    retired = target.with_name(f".old-{uuid.uuid4().hex[:8]}-{target.name}")
    target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def write_embedding_table(
    batches: Iterable[pa.RecordBatch],
    embed: Embed,
    dim: int,
    target: Path,
    lineage: dict[str, str],
    progress: Callable[[int], None] | None = None,
    rows_per_file: int = 200_000,
    input_column: str = "image",
    keys: pa.Schema = IMAGE_KEYS,
) -> int:
    """Embed each batch's `input_column` ("image" bytes or "text") and write the `keys` columns
    (id/split/label for images, id/split/text for text), the embedding and the lineage columns
    (model_name, model_version, dataset_version) to `target`/part-NNNNN.parquet.

    Only one batch is held at a time, and a new part file starts every `rows_per_file` rows
    (a Parquet writer keeps every row group's metadata until it closes), so memory does not
    grow with the row count. Returns the
    number of rows written. On any failure the staging folder is removed and `target` is as before.
    """
    schema = embedding_schema(dim, keys)
    created = pa.scalar(datetime.now(timezone.utc), pa.timestamp("us", tz="UTC"))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    rows = parts = writer_rows = 0
    try:
        writer: pq.ParquetWriter | None = None
        try:
            for batch in batches:
                vectors = np.ascontiguousarray(embed(batch.column(input_column).to_pylist()), dtype=np.float32)
                if vectors.shape != (batch.num_rows, dim):
                    raise ValueError(f"embedding of {batch.num_rows} rows returned shape {vectors.shape}, expected ({batch.num_rows}, {dim})")
                n = batch.num_rows
                if writer is None or writer_rows >= rows_per_file:
                    if writer is not None:
                        writer.close()
                    writer = pq.ParquetWriter(staging / f"part-{parts:05d}.parquet", schema)
                    parts, writer_rows = parts + 1, 0
                constant = lambda value, kind=pa.string(): pa.repeat(pa.scalar(value, kind), n)  # noqa: E731
                writer.write_batch(pa.record_batch([
                    *(batch.column(key.name) for key in keys),
                    pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
                    constant(lineage["model_name"]),
                    constant(lineage["model_version"]),
                    constant(lineage["dataset_version"]),
                    pa.repeat(created, n),
                ], schema=schema))
                rows += n
                writer_rows += n
                if progress:
                    progress(rows)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:  # no rows: still publish a readable, empty table
            pq.write_table(schema.empty_table(), staging / "part-00000.parquet")
        publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return rows
