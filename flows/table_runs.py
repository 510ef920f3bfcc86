"""The MLflow and registry edges of writing an embedding table: resolve the model once, open
the MLflow run first (its id goes into the snapshot's manifest), log the result to it."""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow import MlflowClient
from prefect import task
from prefect.runtime import flow_run

from cl_core.datasets import DatasetStore
from flows.mlflow_edge import pyfuncs, registry, tracking
from flows.run_description import PARENT_TAG, STAGE_TAG


@task(name="resolve-model", retries=2, retry_delay_seconds=2)
def resolve_model(model_ref: str) -> dict[str, str]:
    """NAME, NAME@ALIAS or NAME/VERSION -> the concrete version, fixed for the rest of the run
    (an alias that moves meanwhile does not change what this run embeds with)."""
    version = registry.ModelRef.parse(model_ref).resolve(MlflowClient())
    return {"name": version.name, "version": str(version.version), "source_run_id": version.run_id}


def load_embedder(model: dict[str, str], device: str | None = None) -> tuple[Any, int, str]:
    """(embed function over a list of inputs, embedding dimension, modality) of a resolved
    model, read through its modality's pyfunc entry (`pyfuncs.PYFUNCS`: the inputs are the
    values of the record's input column; a recommender's, each a dict, a row of the DataFrame it
    takes: `cl_core.embeddings.interaction_rows`). `device` ("cuda", ...) moves an image or text
    model there; None leaves it on the CPU."""
    loaded = mlflow.pyfunc.load_model(f"models:/{model['name']}/{model['version']}")
    wrapped = loaded.unwrap_python_model()
    if device is not None:
        _move(wrapped, device, model)
    kind = pyfuncs.kind_of(loaded)
    return pyfuncs.embedder(loaded, kind), pyfuncs.pyfunc(kind).dimension(wrapped), kind


def _move(wrapped: Any, device: str, model: dict[str, str]) -> None:
    import torch

    name = f"{model['name']} version {model['version']}"
    if not hasattr(wrapped, "to"):
        raise ValueError(f"{name} ({type(wrapped).__name__}) embeds on the CPU only; set export.num_gpus: 0")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"{name} was to embed on {device}, but torch sees no CUDA device in this process "
                           f"(torch {torch.__version__}, a CPU build?); set export.num_gpus: 0 or install CUDA torch")
    wrapped.to(device)


def load_registered(tracking_uri: str, model: dict[str, str], device: str | None = None) -> tuple[Any, int, str]:
    """`load_embedder` in a process of its own (a Ray actor of the `ray` export engine): the
    concrete version the driver resolved, from the driver's tracking store, so every actor
    embeds with the same model whatever an alias says meanwhile."""
    mlflow.set_tracking_uri(tracking_uri)
    return load_embedder(model, device)


@task(name="start-table-run", retries=2, retry_delay_seconds=2)
def start_table_run(model: dict[str, str], stage: str) -> str:
    """Create the run that will record this table write, in the model's experiment, before any
    row is written: the snapshot's manifest names it."""
    client = MlflowClient()
    experiment_id = client.get_run(model["source_run_id"]).info.experiment_id
    run = client.create_run(experiment_id, run_name=f"{stage}-v{model['version']}", tags={
        STAGE_TAG: stage,
        PARENT_TAG: model["source_run_id"],  # nested under the training run in the MLflow UI
        "model.name": model["name"],
        "model.version": model["version"],
        "model.source_run_id": model["source_run_id"],
    })
    return run.info.run_id


@task(name="log-table-run", retries=2, retry_delay_seconds=2)
def log_table_run(run_id: str, written: dict[str, Any], datasets_root: str) -> None:
    dataset = DatasetStore(datasets_root).resolve(written["dataset_name"], written["dataset_version"])
    with mlflow.start_run(run_id=run_id):
        mlflow.log_params({"table_path": written["table_path"], "snapshot": written["snapshot"],
                           "embedding_dim": written["embedding_dim"], "action": written["action"]})
        mlflow.log_metrics({key: written[key] for key in ("rows", "rows_embedded", "rows_reused", "rows_deleted", "rows_per_s")})
        tracking.log_dataset_lineage(dataset, context=written["action"])


def fail_table_run(run_id: str) -> None:
    MlflowClient().set_terminated(run_id, status="FAILED")


def prefect_flow_run_id() -> str | None:
    return flow_run.id
