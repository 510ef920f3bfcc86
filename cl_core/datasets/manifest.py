"""`manifest.json`: what a dataset version holds, readable without opening the Parquet files.

Every manifest has `"kind"`: "image", "text" or "interactions". Manifests written before text
datasets existed have no "kind" and are image manifests; `manifest_kind` reads both.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cl_core.datasets.layout import MANIFEST_FILE
from cl_core.datasets.records import SPLITS
from cl_core.durable_files import write_durably
from cl_core.modalities import MODALITIES
from cl_core.modalities.image import IMAGE
from cl_core.modalities.interactions import INTERACTIONS
from cl_core.modalities.text import TEXT

SCHEMA_VERSION = 1  # "kind" was added without a bump: old manifests stay readable as images
KINDS = tuple(MODALITIES)


def manifest_kind(manifest: dict[str, Any]) -> str:
    """The manifest's kind; one without "kind" predates text datasets, so it is an image one."""
    return manifest.get("kind", IMAGE.name)


class ImageStats:
    """Running summary of the good rows, gathered during the one validation pass."""

    def __init__(self) -> None:
        self.splits: Counter[str] = Counter()
        self.labels: set[int] = set()
        self.unlabeled = 0
        self.sizes: Counter[tuple[int, int]] = Counter()
        self.all_gray = True

    def add(self, split: str, label: int | None, shape: tuple[int, int, int]) -> None:
        """Count one row; `shape` is the decoded (C, H, W)."""
        self.splits[split] += 1
        if label is None:
            self.unlabeled += 1
        else:
            self.labels.add(label)
        channels, height, width = shape
        self.sizes[(height, width)] += 1
        self.all_gray = self.all_gray and channels == 1

    @property
    def channels(self) -> int:
        return 1 if self.all_gray else 3

    def merge(self, other: ImageStats) -> None:
        """Add the rows `other` counted (another bucket of the same ingest)."""
        self.splits.update(other.splits)
        self.labels |= other.labels
        self.unlabeled += other.unlabeled
        self.sizes.update(other.sizes)
        self.all_gray = self.all_gray and other.all_gray


def build_manifest(
    *,
    name: str,
    version: str,
    source: str,
    stats: ImageStats,
    class_names: list[str] | None,
    quarantined: int,
    files: list[str],
) -> dict[str, Any]:
    labels = sorted(stats.labels)
    # With class names the count is known; without, max label + 1 so that a slice that happens
    # to miss a class still sizes a classifier head for all of them.
    num_classes = len(class_names) if class_names is not None else (labels[-1] + 1 if labels else 0)
    (height, width), _ = stats.sizes.most_common(1)[0]
    return {
        **_identity(name, version, source, stats.splits),
        "num_classes": num_classes,
        "labels": labels,
        "unlabeled_rows": stats.unlabeled,
        "class_names": class_names,
        "channels": stats.channels,
        "image_size": [height, width],  # the most common size; images are stored as encoded
        "distinct_image_sizes": len(stats.sizes),
        "quarantined": quarantined,
        "files": files,
        "kind": IMAGE.name,
        "schema_version": SCHEMA_VERSION,
    }


class TextStats:
    """Running summary of the good text rows, gathered during the one validation pass."""

    def __init__(self) -> None:
        self.splits: Counter[str] = Counter()
        self.pairs = 0
        self.scored = 0
        self.score_min: float | None = None
        self.score_max: float | None = None
        self.labels: set[int] = set()
        self.unlabeled = 0
        self.with_negatives = 0

    def add(
        self, split: str, has_text2: bool, score: float | None, label: int | None, negatives: int
    ) -> None:
        """Count one row; `negatives` is its number of hard negatives."""
        self.splits[split] += 1
        self.pairs += has_text2
        if score is not None:
            self.scored += 1
            self.score_min = score if self.score_min is None else min(self.score_min, score)
            self.score_max = score if self.score_max is None else max(self.score_max, score)
        if label is None:
            self.unlabeled += 1
        else:
            self.labels.add(label)
        self.with_negatives += negatives > 0

    def merge(self, other: TextStats) -> None:
        """Add the rows `other` counted (another bucket of the same ingest)."""
        self.splits.update(other.splits)
        self.pairs += other.pairs
        self.scored += other.scored
        for bound, pick in (("score_min", min), ("score_max", max)):
            values = [v for v in (getattr(self, bound), getattr(other, bound)) if v is not None]
            setattr(self, bound, pick(values) if values else None)
        self.labels |= other.labels
        self.unlabeled += other.unlabeled
        self.with_negatives += other.with_negatives


def _identity(name: str, version: str, source: str, splits: Counter) -> dict[str, Any]:
    """The fields every manifest starts with, image or text."""
    return {
        "name": name,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "rows": sum(splits.values()),
        "splits": {s: splits[s] for s in SPLITS if splits[s]},
    }


def build_text_manifest(
    *, name: str, version: str, source: str, stats: TextStats, quarantined: int, files: list[str]
) -> dict[str, Any]:
    labels = sorted(stats.labels)
    return {
        **_identity(name, version, source, stats.splits),
        "pairs": stats.pairs,  # rows with a text2; the others are single sentences
        "scored_rows": stats.scored,
        "score_min": stats.score_min,  # None when no row has a score
        "score_max": stats.score_max,
        "labels": labels,
        # max label + 1, as for images without class names: a classifier head sized from it
        # covers every label even when one is missing from this data.
        "num_classes": labels[-1] + 1 if labels else 0,
        "unlabeled_rows": stats.unlabeled,
        "rows_with_negatives": stats.with_negatives,
        "quarantined": quarantined,
        "files": files,
        "kind": TEXT.name,
        "schema_version": SCHEMA_VERSION,
    }


def build_interactions_manifest(
    *,
    name: str,
    version: str,
    source: str,
    splits: Counter,
    entities: dict[str, dict[str, Any]],
    split_rule: dict[str, Any],
    rated_rows: int,
    timestamps: tuple[float, float],
    quarantined: dict[str, int],
    quarantined_by_cause: dict[str, dict[str, int]],
    files: list[str],
) -> dict[str, Any]:
    """`entities`: {"users": {"rows", "files", "features" ({name: type}), "with_side_row",
    "titles"}, "items": {...}}; `split_rule`: the `data.interactions.split` section."""
    return {
        **_identity(name, version, source, splits),
        "users": entities["users"]["rows"],
        "items": entities["items"]["rows"],
        "entities": entities,
        "split_rule": split_rule,
        "rated_rows": rated_rows,  # interactions with a rating; 0 when the source has no rating column
        "timestamp_min": timestamps[0],
        "timestamp_max": timestamps[1],
        "quarantined": sum(quarantined.values()),
        "quarantined_by_table": quarantined,  # interactions, users, items
        "quarantined_by_cause": quarantined_by_cause,  # {table: {"bad timestamp": 2, ...}}
        "files": files,  # the interactions; the users and items tables are under "entities"
        "kind": INTERACTIONS.name,
        "schema_version": SCHEMA_VERSION,
    }


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    write_durably(folder / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise OSError(f"cannot read dataset manifest {path}: {error}") from error
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: schema_version {manifest.get('schema_version')!r} is not {SCHEMA_VERSION}"
        )
    if manifest_kind(manifest) not in KINDS:
        raise ValueError(f"{path}: kind {manifest['kind']!r} is not one of {KINDS}")
    return manifest
