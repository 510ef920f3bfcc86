"""Small files written so that a crash leaves the old content or the new, never a torn file:
the datasets' LATEST and manifests, the embedding tables' CURRENT and snapshot manifests."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file inside `folder` durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_durably(path: Path, text: str) -> None:
    """Write `text` to `path` and fsync it before returning."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def replace_atomically(path: Path, text: str) -> None:
    """Replace `path` by a file holding `text`: a temporary file beside it, fsynced, renamed over
    it, then the folder fsynced. A reader sees the old content or the new one."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    try:
        write_durably(temporary, text)
        os.replace(temporary, path)
        fsync_dir(path.parent)
    finally:
        temporary.unlink(missing_ok=True)
