"""The rows a source yields and the Parquet schema they are stored under."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

SPLITS = ("train", "val", "test")

IMAGE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("image", pa.binary(), nullable=False),  # encoded PNG/JPEG/... bytes, as read
        pa.field("label", pa.int64(), nullable=True),  # None for unlabeled images
        pa.field("split", pa.string(), nullable=False),  # one of SPLITS
    ]
)


@dataclass(frozen=True)
class ImageRecord:
    """One image read from a source, not yet validated.

    `split` is None when the source does not say; the store then assigns one by hashing `id`.
    """

    id: str
    image: bytes
    label: int | None
    split: str | None

    def __repr__(self) -> str:  # the default repr would dump the image bytes
        return (
            f"ImageRecord(id={self.id!r}, image=<{len(self.image)} bytes>, "
            f"label={self.label!r}, split={self.split!r})"
        )


@dataclass(frozen=True)
class BadRecord:
    """Something a source could not turn into an `ImageRecord`; it goes to the quarantine file.

    `id_or_location` is the record id when known, else where in the source the damage was
    (an archive, a file); `source` is the shard, folder or data set it came from.
    """

    id_or_location: str
    source: str
    reason: str

    def to_json_dict(self) -> dict[str, str]:
        return {"id": self.id_or_location, "source": self.source, "reason": self.reason}


def first_good(records: Iterator, limit: int, good: type) -> Iterator:
    """Pass records through until `limit` records of type `good` went by, then stop reading the
    source (bad records before that pass through too)."""
    seen = 0
    try:
        for record in records:
            yield record
            if isinstance(record, good):
                seen += 1
                if seen >= limit:
                    return
    finally:
        records.close()  # releases the open shard or file now, not at garbage collection
