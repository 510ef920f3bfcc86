"""What every ingest returns and checks first, below both the store (`store.py`) and the ingests of
each kind beside their sources (`sources/image_ingest.py`, `sources/text/ingest.py`,
`sources/interactions/ingest.py`). Those take the store as an argument and use its public
generic pieces (`ingest_rows`, `check_kind`, `failed_ingest`, `publish_version`); the store's
`ingest*` methods import them when called. So neither side imports the other at module level, and
no import runs back up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cl_core.datasets.layout import check_name

PROGRESS_EVERY = 5000


def check_description(description: object) -> None:
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"description must be a non-empty string, got {description!r}")


def check_ingest_args(name: str, max_bad_fraction: float) -> None:
    check_name(name)
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise ValueError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction!r}")


@dataclass(frozen=True)
class IngestResult:
    name: str
    version: str
    path: Path
    rows: int
    splits: dict[str, int]
    quarantined: int
    quarantine_path: Path | None
    created: bool  # False when this exact content was already stored
    elapsed_s: float
    channels: int | None  # 1 (all gray) or 3 for images; None for text and interactions
    # Counts of a kind's own: interactions give users, items, side rows, rejected rows by cause.
    details: dict[str, Any] | None = None
