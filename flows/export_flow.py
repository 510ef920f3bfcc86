"""Export flow: embed every row of a dataset with a registered model into a Parquet table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task

from cl_core.datasets import DatasetStore
from flows import registry, tracking
from flows.embedding_table import IMAGE_KEYS, TEXT_KEYS, sentence_rows, write_embedding_table
from flows.workspace import Workspace


def _every_tenth(total: int, report):
    """Call `report(done)` each time another tenth of `total` rows is done (and at the end)."""
    reported = [0]

    def progress(done: int) -> None:
        if done == total or done * 10 // max(total, 1) > reported[0]:
            reported[0] = done * 10 // max(total, 1)
            report(done)

    return progress


@task(name="write-embeddings")
def write_embeddings(model_ref: str, datasets_root: str, embeddings_root: str, dataset_name: str,
                     dataset_version: str | None, batch_size: int) -> dict[str, Any]:
    logger = get_run_logger()
    model, version = registry.load_model(registry.ModelRef.parse(model_ref))
    dataset = DatasetStore(Path(datasets_root)).resolve(dataset_name, dataset_version)
    dim = model.unwrap_python_model().embedder.embedding_dim
    target = Path(embeddings_root) / version.name / f"v{version.version}" / f"{dataset.name}-{dataset.version}"
    started = time.perf_counter()
    if dataset.kind == "text":
        total, column, keys = dataset.num_rows() + dataset.pairs, "text", TEXT_KEYS
        batches = sentence_rows(dataset.iter_batches(batch_size=batch_size, columns=["id", "split", "text1", "text2"]))
    else:
        total, column, keys = dataset.num_rows(), "image", IMAGE_KEYS
        batches = dataset.iter_batches(batch_size=batch_size, columns=["id", "split", "label", "image"])

    def embed(inputs: list) -> np.ndarray:
        return model.predict(pd.DataFrame({column: inputs}))

    rows = write_embedding_table(
        batches, embed, dim, target,
        {"model_name": version.name, "model_version": str(version.version), "dataset_version": dataset.version},
        progress=_every_tenth(total, lambda done: logger.info("export: %d/%d rows embedded", done, total)),
        input_column=column, keys=keys,
    )
    elapsed = time.perf_counter() - started
    return {
        "path": str(target), "rows": rows, "embedding_dim": dim, "rows_per_s": rows / elapsed,
        "model_name": version.name, "model_version": str(version.version), "source_run_id": version.run_id,
        "dataset": {"name": dataset.name, "version": dataset.version},
    }


@task(name="log-export", retries=2, retry_delay_seconds=2)
def log_export(written: dict[str, Any], workspace: str) -> str:
    ws = Workspace(Path(workspace))
    experiment_id = mlflow.get_run(written["source_run_id"]).info.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    dataset = DatasetStore(ws.datasets).resolve(written["dataset"]["name"], written["dataset"]["version"])
    with mlflow.start_run(run_name=f"export-v{written['model_version']}") as run:
        mlflow.set_tags({
            "clpipe.stage": "export",
            "model.name": written["model_name"],
            "model.version": written["model_version"],
            "model.source_run_id": written["source_run_id"],
        })
        mlflow.log_params({"table_path": written["path"], "embedding_dim": written["embedding_dim"]})
        mlflow.log_metrics({"rows": written["rows"], "rows_per_s": written["rows_per_s"]})
        tracking.log_dataset_lineage(dataset, context="export")
    return run.info.run_id


@flow(name="export")
def export_flow(model_ref: str, dataset_name: str, workspace: str, dataset_version: str | None = None, batch_size: int = 1024) -> dict[str, Any]:
    """Embed every row of the dataset with `model_ref` (default alias: champion) into Parquet."""
    ws = Workspace(Path(workspace)).create()
    mlflow.set_tracking_uri(ws.tracking_uri)
    written = write_embeddings(model_ref, str(ws.datasets), str(ws.embeddings), dataset_name, dataset_version, batch_size)
    written["export_run_id"] = log_export(written, str(ws.root))
    return written
