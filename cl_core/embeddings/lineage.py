"""What `clpipe table` shows: the current snapshot, its ancestors still on disk, the counts."""

from __future__ import annotations

from typing import Any

from cl_core.embeddings.errors import EmbeddingTableError
from cl_core.embeddings.manifest import read_manifest
from cl_core.embeddings.table import EmbeddingTable, SnapshotRemovedError

_LINEAGE_FIELDS = ("snapshot", "action", "model_version", "dataset_version", "rows", "rows_embedded",
                   "rows_reused", "rows_deleted", "created_at")


def describe_table(table: EmbeddingTable) -> dict[str, Any]:
    """The current snapshot's manifest, and its lineage newest first: each parent's counts
    while its folder is kept (`export.keep_snapshots`), then only the id of the first removed one.
    A prune beside it (another process publishing) shows as a removed parent, not an error.

    Raises:
        EmbeddingTableError: no current snapshot, or the table is damaged.
    """
    try:
        current = table.current()
    except SnapshotRemovedError:  # CURRENT moved on and the snapshot it named went meanwhile
        current = table.current()
    if current is None:
        raise EmbeddingTableError(
            f"no embedding table for model {table.model_name!r} and dataset {table.dataset_name!r} at {table.path}"
        )
    lineage: list[dict[str, Any]] = []
    parent = current.manifest.parent
    while parent is not None:
        try:
            manifest = read_manifest(table.path / parent).to_dict()
        except EmbeddingTableError:
            if (table.path / parent).is_dir():
                raise
            lineage.append({"snapshot": parent, "removed": True})
            break
        lineage.append({key: manifest[key] for key in _LINEAGE_FIELDS})
        parent = manifest["parent"]
    return {
        "table_path": str(table.path),
        "current": current.manifest.to_dict(),
        "lineage": lineage,
        "snapshots": table.snapshot_ids(),
    }


def format_table(described: dict[str, Any]) -> str:
    m = described["current"]
    lines = [
        f"table     {described['table_path']}",
        f"current   {m['snapshot']}  ({m['action']}, {m['created_at']})",
        f"model     {m['model_name']} v{m['model_version']}   dataset {m['dataset_name']}@{m['dataset_version']}",
        (f"rows      {m['rows']} x {m['dimension']}   embedded {m['rows_embedded']}, reused {m['rows_reused']}, "
         f"deleted {m['rows_deleted']}"),
        f"runs      mlflow {m['mlflow_run_id']}   prefect {m['prefect_flow_run_id']}",
    ]
    for step in described["lineage"]:
        if step.get("removed"):
            lines.append(f"  <- {step['snapshot']}  (removed)")
        else:
            lines.append(f"  <- {step['snapshot']}  {step['action']}, model v{step['model_version']}, dataset "
                         f"{step['dataset_version']}, {step['rows']} rows (embedded {step['rows_embedded']}, "
                         f"reused {step['rows_reused']}, deleted {step['rows_deleted']})")
    return "\n".join(lines)
