"""The good image rows of one ingest: per-image checks, the stored table, the version id.

The store runs the checks every kind shares (record type, duplicate id, split) and hands each
remaining record to `ImageRows.add`; `TextRows` is the same interface for text.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import pyarrow as pa

from cl_core.datasets.content_hash import CONTENT_SHA256
from cl_core.datasets.decode import decoded_shape
from cl_core.datasets.manifest import ImageStats, build_manifest
from cl_core.datasets.records import IMAGE_SCHEMA, ImageRecord
from cl_core.datasets.version_id import BucketHashes, bucket_order


def is_int(value: object) -> bool:
    # numpy integers are refused: they would not serialise into the manifest's JSON.
    return isinstance(value, int) and not isinstance(value, bool)


def image_row_line(record_id: str, digest: str, label: int | None, split: str) -> bytes:
    """One image row as the version hash reads it."""
    # The id is length-prefixed; the other fields cannot contain the separators.
    return f"{len(record_id)}:{record_id}\t{digest}\t{label}\t{split}\n".encode()


def _bad_label(label: int, num_classes: int | None) -> str:
    if num_classes is None:
        return f"negative label {label}"
    return f"label {label} is outside the {num_classes} class names (0..{num_classes - 1})"


class ImageRows:
    """The good rows of one image ingest, in arrival order, plus what the version hash needs.

    Args:
        class_names: label i is class_names[i]; labels without a name are rejected. None when
            labels are unnamed (then only negative labels are rejected).
    """

    kind = "image"

    def __init__(self, class_names: list[str] | None = None) -> None:
        self.class_names = class_names
        self.ids: list[str] = []
        self.images: list[bytes] = []
        self.labels: list[int | None] = []
        self.split_of_row: list[str] = []
        self.digests: list[str] = []
        self.stats = ImageStats()

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def splits(self) -> Counter[str]:
        return self.stats.splits

    @property
    def channels(self) -> int:
        return self.stats.channels

    @staticmethod
    def check_types(record: object, position: int) -> None:
        """A wrong type is the caller's bug, not bad data: raise instead of quarantining."""
        if not isinstance(record, ImageRecord):
            raise TypeError(
                f"records[{position}] is a {type(record).__name__}, not an ImageRecord or BadRecord"
            )
        if not (
            isinstance(record.id, str)
            and isinstance(record.image, bytes)
            and (record.label is None or is_int(record.label))
            and (record.split is None or isinstance(record.split, str))
        ):
            raise TypeError(
                f"records[{position}] has wrong field types: id {type(record.id).__name__} (str), "
                f"image {type(record.image).__name__} (bytes), label "
                f"{type(record.label).__name__} (int or None), split "
                f"{type(record.split).__name__} (str or None)"
            )

    def check(self, record: ImageRecord, split: str) -> tuple[str | None, Any]:
        """Why the row would be rejected (None when it is good), and what `keep` needs: the
        decoded (C, H, W) shape and the image's sha256. Changes nothing, so the `ray` engine
        runs it where the image was read and `keep`s the row elsewhere."""
        num_classes = None if self.class_names is None else len(self.class_names)
        if record.label is not None and (
            record.label < 0 or (num_classes is not None and record.label >= num_classes)
        ):
            return _bad_label(record.label, num_classes), None
        try:
            shape = decoded_shape(record.image)
        except ValueError as error:
            return str(error), None
        return None, (shape, hashlib.sha256(record.image).hexdigest())

    def keep(self, record: ImageRecord, split: str, checked: Any) -> None:
        """Keep a row `check` passed, with what it returned."""
        shape, digest = checked
        self.ids.append(record.id)
        self.images.append(record.image)
        self.labels.append(record.label)
        self.split_of_row.append(split)
        self.digests.append(digest)
        self.stats.add(split, record.label, tuple(shape))

    def add(self, record: ImageRecord, split: str) -> str | None:
        """Decode the image and keep the row; return why it was rejected instead, if it was."""
        problem, checked = self.check(record, split)
        if problem is None:
            self.keep(record, split, checked)
        return problem

    def sorted_table(self) -> tuple[pa.Table, str]:
        """The rows in storage order, with each image's `content_sha256` stored beside it, and
        the version id (`cl_core.datasets.version_id`)."""
        table, hashes = self.table_and_hashes()
        return table, hashes.version()

    def table_and_hashes(self) -> tuple[pa.Table, BucketHashes]:
        """The rows in (bucket, id) order, and each bucket's hash over (id, image sha256, label,
        split) in id order: neither arrival order nor shard names change it (nor the stored
        hash column, added later)."""
        table = pa.table(
            [
                pa.array(self.ids, pa.string()),
                pa.array(self.images, pa.binary()),
                pa.array(self.labels, pa.int64()),
                pa.array(self.split_of_row, pa.string()),
                pa.array(self.digests, pa.string()),
            ],
            schema=IMAGE_SCHEMA.append(pa.field(CONTENT_SHA256, pa.string(), nullable=False)),
        )
        order, buckets = bucket_order(self.ids)
        hashes = BucketHashes()
        for i, bucket in zip(order, buckets, strict=True):
            hashes.update(
                bucket,
                image_row_line(self.ids[i], self.digests[i], self.labels[i], self.split_of_row[i]),
            )
        return table.take(pa.array(order, pa.int64())), hashes

    def manifest(
        self, *, name: str, version: str, source: str, quarantined: int, files: list[str]
    ) -> dict[str, Any]:
        return build_manifest(
            name=name,
            version=version,
            source=source,
            stats=self.stats,
            class_names=self.class_names,
            quarantined=quarantined,
            files=files,
        )
