"""What a flow command prints when it is done: one JSON line with --json, else the summary
indented, and for `clpipe run` the lines a person reads (metrics next to their baselines)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cl_core.modalities import modality
from flows.workspace import Workspace


def print_summary(summary: dict[str, Any], workspace: Workspace, as_json: bool,
                  human: Callable[[dict[str, Any], Workspace], None] | None = None) -> None:
    if as_json:
        print(json.dumps(summary, default=str), flush=True)
    elif human is not None:
        human(summary, workspace)
    else:
        print(json.dumps(summary, indent=2, default=str), flush=True)


def print_run_summary(summary: dict[str, Any], workspace: Workspace) -> None:
    ingested, trained, evaluated, table = (summary[k] for k in ("ingest", "train", "evaluate", "reembed"))
    lines = [
        "",
        "clpipe run finished",
        f"  dataset        {ingested['name']}@{ingested['version']}  "
        f"({ingested['rows']} rows {ingested['splits']}, {ingested['quarantined']} quarantined)",
        f"  training run   {trained['run_id']}  (final loss {trained['train_metrics'].get('loss', float('nan')):.4f}, "
        f"{trained['train_metrics'].get('samples_per_s', 0):.0f} samples/s)",
        *metric_lines(evaluated),
        f"  model          {trained['model_name']} v{trained['model_version']}  aliases {evaluated['promotion']['aliases']}",
        f"  promotion      {evaluated['promotion']['reason']}",
        table_line(table),
        f"  compare runs   {mlflow_ui_command(workspace)}",
    ]
    if summary.get("log"):
        lines.append(f"  log            {summary['log']}")
    print("\n".join(lines))


def table_line(table: dict[str, Any]) -> str:
    """What the run did to the champion's embedding table: reembed's action and the snapshot."""
    action = table["action"]
    if action == "superseded":
        return f"  embeddings     superseded, nothing written: {table.get('reason', '')}"
    where = f"{table['table_path']}/{table['snapshot']}" if table.get("snapshot") else table["table_path"]
    return (f"  embeddings     {action}  {where}  ({table['rows']} rows, {table['rows_embedded']} embedded, "
            f"model v{table['model_version']})")


def metric_lines(evaluated: dict[str, Any]) -> list[str]:
    """An evaluation's lines, as the protocol of its modality prints them (`summary_lines`)."""
    return modality(evaluated["modality"]).part("protocol").summary_lines(evaluated)


def mlflow_ui_command(workspace: Workspace) -> str:
    return f"mlflow ui --backend-store-uri {workspace.tracking_uri} --host 127.0.0.1 --port 5000"
