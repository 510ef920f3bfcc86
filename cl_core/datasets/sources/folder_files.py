"""Listing a source folder: its files, and the error for a folder with none a reader takes.
Text and interaction sources share them."""

from __future__ import annotations

from pathlib import Path

from cl_core.datasets.errors import IngestError


def folder_entries(folder: Path) -> list[Path]:
    """The files of a source folder, in name order: not subfolders or hidden files."""
    try:
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as error:
        raise IngestError(f"source {str(folder)!r} cannot be read: {error}") from error


def no_files_error(folder: Path, wanted: str, spec_format: str, entries: list[Path]) -> IngestError:
    """The error for a source folder with nothing to read: `wanted` says what was looked for
    ("tsv/csv file"), the first ten `entries` what the folder holds."""
    present = ", ".join(p.name for p in entries[:10]) or "nothing"
    return IngestError(f"source {str(folder)!r} holds no {wanted} for format {spec_format!r} (it holds {present})")
