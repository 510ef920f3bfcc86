"""Helpers shared by the benchmark scripts (not a test: prints, never asserts timings)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def shared_data(subfolder: str) -> Path | None:
    root = Path(os.environ.get("CLPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = root / subfolder
    return path if path.is_dir() else None


def table(rows: list[tuple], headers: tuple[str, ...]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    line = lambda values: "| " + " | ".join(str(v).ljust(w) for v, w in zip(values, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])
