"""`manifest.json` of one snapshot: what made it, from what, and how many rows it holds."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from cl_core.durable_files import write_durably
from cl_core.embeddings.errors import EmbeddingTableError

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class SnapshotManifest:
    """A published snapshot's record. `parent` is the snapshot CURRENT named when this one was
    made (None for the first); rows = rows_embedded + rows_reused; rows_deleted counts the
    parent's ids that are no longer in the dataset."""

    snapshot: str
    model_name: str
    model_version: str
    dataset_name: str
    dataset_version: str
    rows: int
    dimension: int
    files: list[str]
    parent: str | None
    rows_embedded: int
    rows_reused: int
    rows_deleted: int
    created_at: str  # ISO 8601, UTC
    prefect_flow_run_id: str | None
    mlflow_run_id: str | None
    action: str  # "export", "incremental" or "backfill"
    # The nearest-neighbour index (`snapshot_index.index_record`); None in snapshots published
    # before snapshots carried one (they are searched exactly).
    index: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_manifest(folder: Path, manifest: SnapshotManifest) -> None:
    write_durably(folder / MANIFEST_FILE, json.dumps(manifest.to_dict(), indent=2) + "\n")


def read_manifest(folder: Path) -> SnapshotManifest:
    path = folder / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmbeddingTableError(f"snapshot manifest {path} is missing") from None
    except (OSError, ValueError) as error:
        raise EmbeddingTableError(f"snapshot manifest {path} is corrupt: {error}") from None
    names = {f.name for f in fields(SnapshotManifest)}
    required = {f.name for f in fields(SnapshotManifest) if f.default is MISSING}
    if not isinstance(data, dict) or not required <= set(data):
        missing = sorted(required - set(data)) if isinstance(data, dict) else "all"
        raise EmbeddingTableError(f"snapshot manifest {path} is corrupt: missing fields {missing}")
    return SnapshotManifest(**{name: data[name] for name in names if name in data})
