"""The good text rows of one ingest: per-row checks, the stored table, the version id.

The same interface as `ImageRows`; the store runs the checks every kind shares (record type,
duplicate id, split) and hands each remaining record to `TextRows.add`.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import pyarrow as pa

from cl_core.datasets.image_rows import is_int
from cl_core.datasets.manifest import TextStats, build_text_manifest
from cl_core.datasets.sources.text.records import TEXT_SCHEMA, TextPairRecord
from cl_core.datasets.version_id import BucketHashes, bucket_order


def _is_optional_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def _types_ok(record: TextPairRecord) -> bool:
    negatives = record.negatives
    return (
        isinstance(record.id, str)
        and isinstance(record.text1, str)
        and _is_optional_str(record.text2)
        # An int score is a whole-number score (STS-B writes "4"); bool is a caller bug.
        and (record.score is None or is_int(record.score) or isinstance(record.score, float))
        and (record.label is None or is_int(record.label))
        and isinstance(negatives, (tuple, list))
        and all(isinstance(n, str) for n in negatives)
        and _is_optional_str(record.split)
    )


def _problem(record: TextPairRecord) -> str | None:
    """Why this row cannot be stored, or None."""
    if not record.text1.strip():
        return "text1 is empty"
    if record.text2 is not None and not record.text2.strip():
        return "text2 is empty (use None for a single-sentence row)"
    if record.score is not None:
        try:
            finite = math.isfinite(record.score)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            return f"score is not a finite number: {record.score}"
    if record.label is not None and record.label < 0:
        return f"negative label {record.label}"
    for position, negative in enumerate(record.negatives, 1):
        if not negative.strip():
            return f"hard negative {position} is empty"
    return None


def text_row_line(row: list) -> bytes:
    """One text row, [id, text1, text2, score, label, negatives, split], as the version hash
    reads it: one JSON array per row; JSON escapes tabs and newlines inside sentences, so the rows
    cannot run into each other, and a float's repr round-trips exactly."""
    return json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n"


class TextRows:
    """The good rows of one text ingest, in arrival order."""

    kind = "text"
    channels = None  # IngestResult.channels: text has none

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.text1: list[str] = []
        self.text2: list[str | None] = []
        self.scores: list[float | None] = []
        self.labels: list[int | None] = []
        self.negatives: list[list[str]] = []
        self.split_of_row: list[str] = []
        self.stats = TextStats()

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def splits(self) -> Counter[str]:
        return self.stats.splits

    @staticmethod
    def check_types(record: object, position: int) -> None:
        """A wrong type is the caller's bug, not bad data: raise instead of quarantining."""
        if not isinstance(record, TextPairRecord):
            raise TypeError(
                f"records[{position}] is a {type(record).__name__}, not a TextPairRecord or "
                "BadRecord"
            )
        if not _types_ok(record):
            got = ", ".join(
                f"{field} {type(getattr(record, field)).__name__}"
                for field in ("id", "text1", "text2", "score", "label", "negatives", "split")
            )
            raise TypeError(
                f"records[{position}] has wrong field types: want id str, text1 str, text2 str "
                "or None, score float or None, label int or None, negatives a tuple of str, "
                f"split str or None; got {got}"
            )

    def check(self, record: TextPairRecord, split: str) -> tuple[str | None, None]:
        """Why the row would be rejected (None when it is good); changes nothing. The second
        value is what `keep` needs: nothing for text (see `ImageRows.check`)."""
        return _problem(record), None

    def keep(self, record: TextPairRecord, split: str, checked: None = None) -> None:
        """Keep a row `check` passed."""
        score = None if record.score is None else float(record.score)  # 4 and 4.0: one version
        self.ids.append(record.id)
        self.text1.append(record.text1)
        self.text2.append(record.text2)
        self.scores.append(score)
        self.labels.append(record.label)
        self.negatives.append(list(record.negatives))
        self.split_of_row.append(split)
        self.stats.add(split, record.text2 is not None, score, record.label, len(record.negatives))

    def add(self, record: TextPairRecord, split: str) -> str | None:
        """Keep the row; return why it was rejected instead, if it was."""
        problem, checked = self.check(record, split)
        if problem is None:
            self.keep(record, split, checked)
        return problem

    def sorted_table(self) -> tuple[pa.Table, str]:
        """The rows in storage order, and the version id (`cl_core.datasets.version_id`)."""
        table, hashes = self.table_and_hashes()
        return table, hashes.version()

    def table_and_hashes(self) -> tuple[pa.Table, BucketHashes]:
        """The rows in (bucket, id) order, and each bucket's hash over (id, text1, text2, score,
        label, negatives, split) in id order: neither arrival order nor file names change it."""
        table = pa.table(
            [
                pa.array(self.ids, pa.string()),
                pa.array(self.text1, pa.string()),
                pa.array(self.text2, pa.string()),
                pa.array(self.scores, pa.float64()),
                pa.array(self.labels, pa.int64()),
                # No hard negatives is stored as null, like a missing text2, score or label.
                pa.array([n or None for n in self.negatives], pa.list_(pa.string())),
                pa.array(self.split_of_row, pa.string()),
            ],
            schema=TEXT_SCHEMA,
        )
        order, buckets = bucket_order(self.ids)
        hashes = BucketHashes()
        for i, bucket in zip(order, buckets, strict=True):
            row = [
                self.ids[i], self.text1[i], self.text2[i], self.scores[i], self.labels[i],
                self.negatives[i], self.split_of_row[i],
            ]
            hashes.update(bucket, text_row_line(row))
        return table.take(pa.array(order, pa.int64())), hashes

    def manifest(
        self, *, name: str, version: str, source: str, quarantined: int, files: list[str]
    ) -> dict[str, Any]:
        return build_text_manifest(
            name=name,
            version=version,
            source=source,
            stats=self.stats,
            quarantined=quarantined,
            files=files,
        )
