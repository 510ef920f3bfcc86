"""`content_sha256`: the hash of the exact input a vector is computed from.

The image bytes as stored, or a sentence's UTF-8 text. Image versions ingested since the column
exists store it per row beside the image; older versions get it computed here on read, so every
reader sees the same column either way. The dataset version id does not depend on this column
(it hashes the image digests itself), so adding it changed no existing version id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from cl_core.datasets.dataset_version import DatasetVersion
from cl_core.modalities.image import IMAGE

CONTENT_SHA256 = "content_sha256"


def content_sha256(values: pa.Array | Sequence[bytes | str]) -> pa.Array:
    """Hex sha256 of each value: bytes as they are, strings as UTF-8."""
    items = values.to_pylist() if isinstance(values, (pa.Array, pa.ChunkedArray)) else values
    return pa.array(
        [hashlib.sha256(v.encode("utf-8") if isinstance(v, str) else v).hexdigest() for v in items],
        pa.string(),
    )


def iter_image_batches(
    dataset: DatasetVersion, batch_size: int, columns: Sequence[str]
) -> Iterator[pa.RecordBatch]:
    """Stream `columns` of an image version plus `content_sha256`, in stored order.

    Read from the parts where ingest stored it (the image bytes are then read only when asked
    for); computed from the image bytes for versions ingested before the column existed.
    """
    if dataset.kind != IMAGE.name:
        raise TypeError(f"{dataset!r} is a {dataset.kind} dataset; sentence hashes come from sentence_rows")
    wanted = [c for c in columns if c != CONTENT_SHA256]
    for path in dataset.files:
        with pq.ParquetFile(path, pre_buffer=False) as parquet:
            stored = CONTENT_SHA256 in parquet.schema_arrow.names
            to_read = [*wanted, CONTENT_SHA256] if stored else list(dict.fromkeys([*wanted, "image"]))
            for batch in parquet.iter_batches(batch_size=batch_size, columns=to_read):
                if stored:
                    yield batch
                    continue
                hashes = content_sha256(batch.column("image"))
                yield pa.RecordBatch.from_arrays(
                    [*(batch.column(c) for c in wanted), hashes], names=[*wanted, CONTENT_SHA256]
                )
