"""The good image rows of one ingest: per-image checks, the id-sorted table, the version id.

The store runs the checks every kind shares (record type, duplicate id, split) and hands each
remaining record to `ImageRows.add`; `TextRows` is the same interface for text.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cl_core.datasets.content_hash import CONTENT_SHA256
from cl_core.datasets.decode import decoded_shape
from cl_core.datasets.manifest import ImageStats, build_manifest
from cl_core.datasets.records import IMAGE_SCHEMA, ImageRecord


def is_int(value: object) -> bool:
    # numpy integers are refused: they would not serialise into the manifest's JSON.
    return isinstance(value, int) and not isinstance(value, bool)


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

    def add(self, record: ImageRecord, split: str) -> str | None:
        """Decode the image and keep the row; return why it was rejected instead, if it was."""
        num_classes = None if self.class_names is None else len(self.class_names)
        if record.label is not None and (
            record.label < 0 or (num_classes is not None and record.label >= num_classes)
        ):
            return _bad_label(record.label, num_classes)
        try:
            shape = decoded_shape(record.image)
        except ValueError as error:
            return str(error)
        self.ids.append(record.id)
        self.images.append(record.image)
        self.labels.append(record.label)
        self.split_of_row.append(split)
        self.digests.append(hashlib.sha256(record.image).hexdigest())
        self.stats.add(split, record.label, shape)
        return None

    def sorted_table(self) -> tuple[pa.Table, str]:
        """The rows sorted by id, with each image's `content_sha256` stored beside it, and the
        version id: sha256 over (id, image sha256, label, split) in that order, so neither
        arrival order nor shard names change it (nor the stored hash column, added later)."""
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
        order = pc.sort_indices(table, sort_keys=[("id", "ascending")])
        version_hash = hashlib.sha256()
        for i in order.to_pylist():
            record_id = self.ids[i]
            # The id is length-prefixed; the other fields cannot contain the separators.
            version_hash.update(
                f"{len(record_id)}:{record_id}\t{self.digests[i]}\t{self.labels[i]}\t"
                f"{self.split_of_row[i]}\n".encode()
            )
        return table.take(order), version_hash.hexdigest()[:16]

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
