"""Reembed flow: bring the embedding table of a model and dataset up to date.

Against CURRENT: nothing to do (same model and dataset version), incremental (same model,
another dataset version: unchanged rows are copied, new and changed ones embedded) or backfill
(another model version: every row embedded into a new snapshot; CURRENT moves only once it is
complete and checked). The table's lock is held from reading CURRENT to publishing, so a second
run waits and then finds the table up to date.

The table follows its alias (default champion) and its dataset's LATEST. Both are read again once
the lock is held: a run whose model version is no longer the alias target, or whose dataset
version is no longer LATEST (a promotion or an ingest happened while it waited, or a late
promotion event names a replaced version), writes nothing and ends "superseded", so CURRENT never
goes back to an older model or dataset. Rolling back is moving the alias back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from prefect import flow, get_run_logger, task

from cl_core.config import ExportConfig, load_config
from cl_core.datasets import DatasetStore
from cl_core.embeddings import EmbeddingTable, write_full_snapshot
from cl_core.embeddings.incremental import (
    BACKFILL,
    SUPERSEDED,
    UP_TO_DATE,
    decide,
    write_incremental,
)
from flows.export_flow import check_modality, index_settings, table_engine, written_summary
from flows.mlflow_edge import registry
from flows.prefect_edge import progress
from flows.table_runs import fail_table_run, load_embedder, log_table_run, prefect_flow_run_id, resolve_model, start_table_run
from flows.workspace import Workspace


def default_champion(model_ref: str) -> str:
    """NAME means NAME@champion here: the table follows the champion."""
    ref = registry.ModelRef.parse(model_ref)
    return str(ref) if ref.alias or ref.version else f"{ref.name}@{registry.CHAMPION}"


def followed_alias(model_ref: str) -> str:
    """The alias a table written with `model_ref` follows: its own alias, else champion (a
    NAME/VERSION, such as a promotion event's payload, is only written while champion names it)."""
    ref = registry.ModelRef.parse(model_ref)
    return f"{ref.name}@{ref.alias or registry.CHAMPION}"


def superseded_reason(model: dict[str, str], follows: str, dataset_name: str, dataset_version: str,
                      latest_version: str) -> str | None:
    """Why this run must not write (one line naming both versions), or None. Read under the
    table's lock: the alias target and the dataset's LATEST as they are now."""
    if dataset_version != latest_version:
        return (f"dataset {dataset_name} version {dataset_version} is no longer LATEST ({latest_version}); "
                "the run that ingested it reembeds the table")
    target = registry.alias_target(MlflowClient(), follows)
    if target is None:
        return None  # nothing to follow yet (no champion): an explicit version is written as asked
    if target != model["version"]:
        return (f"model {model['name']} version {model['version']} is no longer {follows} (version {target}); "
                f"the table follows {follows}")
    return None


def _unchanged(model: dict[str, str], current: Any, table: EmbeddingTable, dataset_name: str, dataset_version: str,
               seconds: float, action: str) -> dict[str, Any]:
    """The summary of a run that wrote nothing: CURRENT as it is, no rows counted."""
    if current is not None:
        summary = written_summary(current, table, seconds, model["source_run_id"])
    else:
        summary = {"snapshot": None, "table_path": str(table.path), "rows": 0, "seconds": seconds}
    return {**summary, "action": action, "model_name": model["name"], "model_version": model["version"],
            "dataset_name": dataset_name, "dataset_version": dataset_version,
            "rows_embedded": 0, "rows_reused": 0, "rows_deleted": 0}


@task(name="refresh-table")
def refresh_table(model: dict[str, str], workspace: str, dataset_name: str, dataset_version: str,
                  export: ExportConfig, flow_run_id: str | None, follows: str | None = None,
                  ray_address: str | None = None) -> dict[str, Any]:
    """Under the table's lock: check the run is still what the table follows (`follows`, NAME@ALIAS,
    and the dataset's LATEST), decide, write (the writer first clears what a killed run left)."""
    logger = get_run_logger()
    ws = Workspace(Path(workspace))
    store = DatasetStore(ws.datasets)
    dataset = store.resolve(dataset_name, dataset_version)
    table = EmbeddingTable(ws.embeddings, model["name"], dataset.name, export.snapshot_grace)
    started = time.perf_counter()
    with table.lock():
        reason = superseded_reason(model, follows or followed_alias(model["name"]), dataset.name, dataset.version,
                                   store.resolve(dataset_name).version)
        current = table.current()
        if reason:
            logger.warning("reembed %s: superseded: %s", table.path, reason)
            return {**_unchanged(model, current, table, dataset.name, dataset.version, time.perf_counter() - started,
                                 SUPERSEDED), "reason": reason}
        action = decide(current.manifest if current else None, model["version"], dataset.version)
        logger.info("reembed %s: CURRENT %s -> %s", table.path, current.id if current else None, action)
        progress.report("reembed", 0, None, "rows", action)
        if action == UP_TO_DATE:
            return _unchanged(model, current, table, dataset.name, dataset.version, time.perf_counter() - started,
                              UP_TO_DATE)
        embed, dim, modality = load_embedder(model)
        check_modality(modality, dataset, model)
        embed = table_engine(embed, model, export, ray_address)
        run_id = start_table_run.fn(model, "reembed")
        record = {"model_name": model["name"], "model_version": model["version"], "dataset_name": dataset.name,
                  "dataset_version": dataset.version, "prefect_flow_run_id": flow_run_id, "mlflow_run_id": run_id,
                  "action": action}
        try:
            if action == BACKFILL:
                snapshot = write_full_snapshot(table, dataset, embed, dim, record, batch_size=export.batch_size,
                                               keep_snapshots=export.keep_snapshots, index_settings=index_settings(export))
            else:
                snapshot = write_incremental(table, current, dataset, embed, record, batch_size=export.batch_size,
                                             keep_snapshots=export.keep_snapshots, index_settings=index_settings(export))
        except BaseException:
            fail_table_run(run_id)
            raise
    written = written_summary(snapshot, table, time.perf_counter() - started, model["source_run_id"])
    written["reembed_run_id"] = run_id
    return written


@flow(name="reembed")
def reembed_flow(model_ref: str, dataset_name: str, workspace: str, export: ExportConfig = ExportConfig(),
                 ray_address: str | None = None, config_file: str | None = None) -> dict[str, Any]:
    """Resolve the model (default alias champion) and the dataset's latest version, then bring
    `embeddings/<model>/<dataset>/` up to date with them, unless either was replaced by the time
    the table's lock is held ("superseded": nothing written). `export` is the run config's
    validated export section (batch size, snapshots kept and their grace, engine; `export_flow`).
    With `config_file` (what a deployment passes: plain strings), that file's export section
    applies instead, read and validated when the run starts."""
    if config_file:
        export = load_config(config_file).export
    ws = Workspace(Path(workspace)).create()
    mlflow.set_tracking_uri(ws.tracking_uri)
    progress.report("reembed", 0, None, "rows", f"resolving {model_ref}")
    model = resolve_model(default_champion(model_ref))
    dataset_version = DatasetStore(ws.datasets).resolve(dataset_name).version
    written = refresh_table(model, str(ws.root), dataset_name, dataset_version, export, prefect_flow_run_id(),
                            followed_alias(model_ref), ray_address)
    if written["action"] not in (UP_TO_DATE, SUPERSEDED):
        log_table_run(written["reembed_run_id"], written, str(ws.datasets))
    if written["action"] == SUPERSEDED:
        progress.finish("reembed", f"superseded: {written['reason']}")
    else:
        progress.finish("reembed", f"{written['action']}: {written['rows_embedded']} rows embedded, "
                        f"{written['rows_reused']} reused")
    keys = ("action", "model_name", "model_version", "dataset_name", "dataset_version", "snapshot", "table_path",
            "rows", "rows_embedded", "rows_reused", "rows_deleted", "seconds")
    return ({key: written[key] for key in keys} | {"mlflow_run_id": written.get("reembed_run_id")}
            | ({"reason": written["reason"]} if "reason" in written else {}))
