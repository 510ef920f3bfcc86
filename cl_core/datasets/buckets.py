"""Ingest one bucket at a time: the pieces a distributed engine runs where the rows are.

An engine reads the source's units (shards, class folders, text files) wherever it likes, tags
each record with its place in the source (`SourceOrder`: unit index, position in the unit) and
its `bucket_of`, `check_record`s it (decode, label, split), groups the records by bucket, and
hands each group to `finish_bucket`. That keeps the local engine's choices exactly: of records
sharing an id, the first good one in source order is kept and the later ones are "duplicate id";
the bucket's rows are hashed in id order (`cl_core.datasets.version_id`) and written as its own
Parquet parts. What comes back, a `BucketResult`, is small: counts, a digest, file names and the
bad records; `DatasetStore.ingest_buckets` merges the results and publishes the version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cl_core.datasets.image_rows import ImageRows
from cl_core.datasets.manifest import ImageStats, TextStats
from cl_core.datasets.parquet_parts import write_parts
from cl_core.datasets.records import SPLITS, BadRecord
from cl_core.datasets.sources.text.rows import TextRows
from cl_core.datasets.splits import split_for_id
from cl_core.datasets.version_id import bucket_of

SourceOrder = tuple[int, int]  # (unit index, position of the record in its unit)


@dataclass(frozen=True)
class CheckedRecord:
    """A record read from the source, with what `check_record` found; crosses process lines."""

    order: SourceOrder
    record: Any  # ImageRecord, TextPairRecord or BadRecord
    problem: str | None  # why it cannot be stored; None when good
    checked: Any  # what `rows.keep` needs (ImageRows: shape and digest)
    split: str | None  # the split it is stored under: its own, else `split_for_id`


@dataclass
class BucketResult:
    """What one bucket wrote and counted."""

    bucket: int
    rows: int
    digest: str  # the bucket's hash (`version_id.BucketHashes.digest`)
    files: list[str]  # its Parquet parts, in order
    stats: ImageStats | TextStats
    bad: list[tuple[SourceOrder, BadRecord]]  # with their place in the source, to order them
    nodes: set[str] = field(default_factory=set)  # where its records were read and it ran


def record_bucket(record: Any) -> int:
    """The bucket a record goes to: its id's, or for a `BadRecord` its id or location's."""
    return bucket_of(record.id_or_location if isinstance(record, BadRecord) else record.id)


def check_record(rows: ImageRows | TextRows, record: Any, order: SourceOrder) -> CheckedRecord:
    """Everything the store checks about one record that does not depend on other records
    (`DatasetStore._validate` without the duplicate check); `rows` is not changed."""
    if isinstance(record, BadRecord):
        return CheckedRecord(order, record, record.reason, None, None)
    if record.split is not None and record.split not in SPLITS:
        return CheckedRecord(order, record, f"unknown split {record.split!r}", None, None)
    split = record.split or split_for_id(record.id)
    problem, checked = rows.check(record, split)
    return CheckedRecord(order, record, problem, checked, split)


def finish_bucket(
    rows: ImageRows | TextRows,
    bucket: int,
    records: Iterable[CheckedRecord],
    folder: Path,
    *,
    description: str,
    rows_per_file: int,
    row_group_rows: int,
) -> BucketResult:
    """Keep the bucket's good records (the first good one per id, in source order), write them
    in id order as `part-<bucket>-00000.parquet`, ... into `folder`, and return the summary.

    `rows` is an empty `ImageRows` / `TextRows` for this bucket alone; records of other buckets
    are a caller bug.
    """
    bad: list[tuple[SourceOrder, BadRecord]] = []
    kept: set[str] = set()
    for item in sorted(records, key=lambda r: r.order):
        record = item.record
        if isinstance(record, BadRecord):
            bad.append((item.order, record))
            continue
        if record_bucket(record) != bucket:
            raise ValueError(f"record {record.id!r} is not in bucket {bucket}")
        if record.id in kept:
            bad.append((item.order, BadRecord(record.id, description, "duplicate id")))
        elif item.problem is not None:
            bad.append((item.order, BadRecord(record.id, description, item.problem)))
        else:
            rows.keep(record, item.split, item.checked)
            kept.add(record.id)
    files: list[str] = []
    table, hashes = rows.table_and_hashes()
    if len(rows):
        files = write_parts(
            table, folder, rows_per_file=rows_per_file, row_group_rows=row_group_rows,
            prefix=f"part-{bucket:03d}",
        )
    return BucketResult(bucket, len(rows), hashes.digest(bucket), files, rows.stats, bad)
