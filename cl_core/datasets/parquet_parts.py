"""Write a table as numbered Parquet part files sized for streaming."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# The image column holds PNG/JPEG bytes that are already compressed: compressing them again costs
# time and saves nothing. Everything else (ids, labels, splits, sentences, scores) compresses well;
# sentences in particular shrink several-fold with zstd.
_IMAGE_COMPRESSION = {
    "id": "zstd", "image": "none", "label": "zstd", "split": "zstd", "content_sha256": "none",  # hex of random bits
}


def _compression(table: pa.Table) -> str | dict[str, str]:
    # A per-column dict names Parquet leaf columns ("negatives.list.element" for a list) and
    # leaves unnamed ones uncompressed, so it is used only for the flat image table, the one whose
    # every column it names; one codec for every column covers the others, nested negatives included.
    return _IMAGE_COMPRESSION if set(table.column_names) <= set(_IMAGE_COMPRESSION) else "zstd"


def write_parts(
    table: pa.Table, folder: Path, *, rows_per_file: int, row_group_rows: int, prefix: str = "part"
) -> list[str]:
    """Write `table` as `part-00000.parquet`, ... (`<prefix>-00000.parquet`) into `folder`; return
    the file names.

    Each file holds at most `rows_per_file` rows in row groups of `row_group_rows`, so a reader
    streaming one row group at a time holds a bounded number of images. Files are fsynced so that
    the rename that publishes the folder never exposes half-written files after a crash.
    """
    names = []
    for part, start in enumerate(range(0, max(table.num_rows, 1), rows_per_file)):
        name = f"{prefix}-{part:05d}.parquet"
        path = folder / name
        pq.write_table(
            table.slice(start, rows_per_file),
            path,
            row_group_size=row_group_rows,
            compression=_compression(table),
            use_dictionary=["split"],  # ids and images are unique: a dictionary only costs
        )
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        names.append(name)
    return names
