"""Export flow: embed every row of a dataset with a registered model into a new snapshot of
its embedding table (cl_core.embeddings), which becomes CURRENT."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mlflow
from prefect import flow, get_run_logger, task

from cl_core.config import ExportConfig
from cl_core.datasets import DatasetStore
from cl_core.embeddings import EmbeddingTable, write_full_snapshot
from cl_core.embeddings.engine import EmbedEngine
from cl_core.embeddings.inputs import table_rows
from cl_core.embeddings.snapshot_index import IndexSettings
from cl_core.embeddings.writer import Embed
from flows.prefect_edge import progress
from flows.table_runs import fail_table_run, load_embedder, log_table_run, prefect_flow_run_id, resolve_model, start_table_run
from flows.workspace import Workspace


def _every_tenth(total: int, report):
    """Call `report(done)` each time another tenth of `total` rows is done (and at the end)."""
    reported = [0]

    def progress(done: int) -> None:
        if done == total or done * 10 // max(total, 1) > reported[0]:
            reported[0] = done * 10 // max(total, 1)
            report(done)

    return progress


def _rows_embedded(logger, done: int, total: int) -> None:
    logger.info("export: %d/%d rows embedded", done, total)
    progress.report("export", done, total, "rows")


def check_modality(modality: str, dataset, model: dict[str, str]) -> None:
    if modality != dataset.kind:
        raise ValueError(f"model {model['name']}/{model['version']} embeds {modality} but dataset "
                         f"{dataset.name}@{dataset.version} at {dataset.path} holds {dataset.kind} rows")


def index_settings(export: ExportConfig) -> IndexSettings:
    """How the snapshots' nearest-neighbour index is built, from the config's export section."""
    return IndexSettings(exact_max_rows=export.exact_search_max_rows)


def table_engine(embed: Embed, model: dict[str, str], export: ExportConfig,
                 ray_address: str | None = None) -> Embed | EmbedEngine:
    """What embeds the rows (`export.engine`): `embed` in this process (local), or a Ray Data actor
    pool where each actor loads the same resolved version from this process's tracking URI (ray)."""
    if export.engine == "local":
        return embed
    from flows.ray_edge.embed import ray_engine

    return ray_engine(model, mlflow.get_tracking_uri(), export, ray_address)


def written_summary(snapshot, table: EmbeddingTable, seconds: float, source_run_id: str) -> dict[str, Any]:
    m = snapshot.manifest
    return {
        "action": m.action, "model_name": m.model_name, "model_version": m.model_version,
        "dataset_name": m.dataset_name, "dataset_version": m.dataset_version,
        "snapshot": m.snapshot, "parent": m.parent, "table_path": str(table.path), "path": str(snapshot.path),
        "rows": m.rows, "rows_embedded": m.rows_embedded, "rows_reused": m.rows_reused, "rows_deleted": m.rows_deleted,
        "embedding_dim": m.dimension, "seconds": seconds, "rows_per_s": m.rows_embedded / max(seconds, 1e-9),
        "source_run_id": source_run_id, "dataset": {"name": m.dataset_name, "version": m.dataset_version},
    }


@task(name="write-snapshot")
def write_snapshot(model: dict[str, str], workspace: str, dataset_name: str, dataset_version: str | None,
                   export: ExportConfig, mlflow_run_id: str, flow_run_id: str | None,
                   ray_address: str | None = None) -> dict[str, Any]:
    logger = get_run_logger()
    ws = Workspace(Path(workspace))
    dataset = DatasetStore(ws.datasets).resolve(dataset_name, dataset_version)
    embed, dim, modality = load_embedder(model)
    check_modality(modality, dataset, model)
    table = EmbeddingTable(ws.embeddings, model["name"], dataset.name, export.snapshot_grace)
    total = table_rows(dataset)
    progress.report("export", 0, total, "rows")
    started = time.perf_counter()
    record = {"model_name": model["name"], "model_version": model["version"], "dataset_name": dataset.name,
              "dataset_version": dataset.version, "prefect_flow_run_id": flow_run_id, "mlflow_run_id": mlflow_run_id,
              "action": "export"}
    with table.lock():
        snapshot = write_full_snapshot(
            table, dataset, table_engine(embed, model, export, ray_address), dim, record, batch_size=export.batch_size,
            keep_snapshots=export.keep_snapshots, index_settings=index_settings(export),
            progress=_every_tenth(total, lambda done: _rows_embedded(logger, done, total)),
        )
    return written_summary(snapshot, table, time.perf_counter() - started, model["source_run_id"])


@flow(name="export")
def export_flow(model_ref: str, dataset_name: str, workspace: str, dataset_version: str | None = None,
                export: ExportConfig = ExportConfig(), ray_address: str | None = None) -> dict[str, Any]:
    """Embed every row of the dataset with `model_ref` (default alias: champion) into a new
    snapshot of the table `embeddings/<model>/<dataset>/`, and point CURRENT at it, as the run
    config's validated `export` section says (batch size, snapshots kept and their grace, engine).
    `export.engine` "ray" embeds on a Ray Data pool of `export.actors` actors (`export.num_gpus`
    each) on the cluster at `ray_address` (else $RAY_ADDRESS, else a local Ray)."""
    ws = Workspace(Path(workspace)).create()
    mlflow.set_tracking_uri(ws.tracking_uri)
    model = resolve_model(model_ref)
    run_id = start_table_run(model, "export")
    try:
        written = write_snapshot(model, str(ws.root), dataset_name, dataset_version, export, run_id,
                                 prefect_flow_run_id(), ray_address)
    except BaseException:
        fail_table_run(run_id)
        raise
    log_table_run(run_id, written, str(ws.datasets))
    written["export_run_id"] = run_id
    progress.finish("export", f"{written['rows']} rows x {written['embedding_dim']} ({written['rows_per_s']:.0f} rows/s)")
    return written
