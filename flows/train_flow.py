"""Train flow: one MLflow run, SimCLR on Ray Train, the encoder registered as `challenger`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric
from prefect import flow, get_run_logger, task

from cl_core.config import PipelineConfig, build_config
from cl_core.datasets import DatasetStore
from cl_core.modalities import modality
from flows import run_description
from flows.mlflow_edge import headline_metrics, registry, tracking
from flows.prefect_edge import run_links
from flows.ray_edge import train_launch
from flows.workspace import Workspace

RESOLVED_CONFIG = "config/resolved.json"


@task(name="resume-run", retries=2, retry_delay_seconds=2)
def resume_run(run_id: str, workspace: str) -> PipelineConfig:
    """The config of an earlier training run, pinned to its dataset version, to continue it from
    its checkpoints. The logged resolved config is read back and validated here, once."""
    mlflow.set_tracking_uri(Workspace(Path(workspace)).tracking_uri)
    try:
        run = MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise LookupError(f"no MLflow run {run_id} at {mlflow.get_tracking_uri()}") from None
    if run.data.tags.get("clpipe.stage") != "train":
        raise ValueError(f"run {run_id} is not a clpipe training run")
    if run.info.status == "FINISHED" and "checkpoint_dir" in run.data.params:
        raise ValueError(f"run {run_id} already finished and registered its model; nothing to resume")
    logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{RESOLVED_CONFIG}")
    config = build_config(logged, {"data.version": run.data.tags["dataset.version"]},
                          origin=f"{RESOLVED_CONFIG} of run {run_id}")
    MlflowClient().update_run(run_id, status="RUNNING")
    return config


@task(name="check-dataset")
def check_dataset(config: PipelineConfig, datasets_root: str) -> dict[str, Any]:
    """Fail before Ray starts when the dataset is missing or smaller than one global batch."""
    dataset = DatasetStore(Path(datasets_root)).resolve(config.data.name, config.data.version)
    kind = dataset.kind
    if kind != config.data.modality:
        raise ValueError(
            f"dataset {dataset.name}@{dataset.version} holds {kind} data but data.modality is {config.data.modality!r}"
        )
    train_rows, what, problem = modality(kind).part("training_data")(dataset, config)
    if train_rows < config.train.batch_size:
        raise ValueError(
            f"dataset {dataset.name}@{dataset.version} has {train_rows} {what}, fewer than "
            f"train.batch_size={config.train.batch_size}"
        )
    if problem:
        raise ValueError(problem)
    return {"name": dataset.name, "version": dataset.version, "train_rows": train_rows}


@task(name="start-run", retries=2, retry_delay_seconds=2)
def start_run(config: PipelineConfig, workspace: str, dataset: dict[str, Any], config_file: str | None) -> str:
    ws = Workspace(Path(workspace))
    tracking.use_experiment(ws, config.experiment_name)
    version = DatasetStore(ws.datasets).resolve(dataset["name"], dataset["version"])
    flow_run_id, flow_run_url = run_links.prefect_flow_run()
    name = run_description.training_run_name(config, version.name)
    tags = run_description.training_tags(config, version.name, version.version, flow_run_id, flow_run_url,
                                         run_description.git_commit())
    with mlflow.start_run(run_name=name, tags=tags) as run:
        mlflow.log_params(tracking.flatten(config.model_dump(mode="json")))
        tracking.log_dataset_lineage(version)
        mlflow.log_dict(config.model_dump(mode="json"), RESOLVED_CONFIG)
        if config_file:
            mlflow.log_artifact(config_file, "config")
    MlflowClient().update_run(run.info.run_id, status="RUNNING")
    run_links.link_mlflow_run(ws.tracking_uri, run.info.experiment_id, run.info.run_id, name)
    return run.info.run_id


@task(name="train-on-ray")
def train_on_ray(
    config: PipelineConfig, workspace: str, dataset: dict[str, Any], run_id: str, ray_address: str | None
) -> dict[str, Any]:
    ws = Workspace(Path(workspace))
    version = DatasetStore(ws.datasets).resolve(dataset["name"], dataset["version"])
    started = time.perf_counter()
    outcome = train_launch.fit(
        config,
        version,
        ws.datasets,
        ws.checkpoints,
        run_id,
        ws.tracking_uri,
        ray_address,
        name=f"{config.model_name}-{run_id[:12]}",
    )
    MlflowClient().log_batch(run_id, metrics=[
        Metric(key, value, int(time.time() * 1000), 0) for key, value in headline_metrics.training_metrics(
            time.perf_counter() - started, outcome.final_metrics.get("samples_per_s_by_epoch", [])).items()
    ])
    get_run_logger().info("training finished: %s, checkpoint %s", outcome.final_metrics, outcome.checkpoint_dir)
    return {"checkpoint_dir": str(outcome.checkpoint_dir), "metrics": outcome.final_metrics}


@task(name="register-model", retries=2, retry_delay_seconds=2)
def register_model(config: PipelineConfig, run_id: str, checkpoint_dir: str, dataset: dict[str, Any],
                   datasets_root: str | None = None) -> dict[str, Any]:
    import torch

    state = torch.load(Path(checkpoint_dir) / train_launch.CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    # A recommender carries its training version's ids, features and histories.
    version = DatasetStore(Path(datasets_root)).resolve(dataset["name"], dataset["version"]) if datasets_root else None
    with mlflow.start_run(run_id=run_id):
        mlflow.log_param("checkpoint_dir", checkpoint_dir)
        info, embedding_dim = registry.log_embedder(state, version)
    version = registry.register(
        info.model_uri, config.model_name, run_id,
        tags={"dataset.name": dataset["name"], "dataset.version": dataset["version"], "objective": config.loss.name},
        description=run_description.training_description(config, dataset["name"], dataset["version"]),
    )
    return {
        "model_name": config.model_name,
        "model_version": str(version.version),
        "model_uri": f"models:/{config.model_name}/{version.version}",
        "aliases": registry.aliases_of(config.model_name, version.version),
        "embedding_dim": embedding_dim,
    }


@flow(name="train")
def train_flow(config: PipelineConfig | None, workspace: str, ray_address: str | None = None,
               config_file: str | None = None, resume_run_id: str | None = None) -> dict[str, Any]:
    """Train the configured model on the dataset's train split and register it as `challenger`.

    With `resume_run_id`, continue that run (its config, dataset and MLflow run) from its last
    Ray Train checkpoint, e.g. after the driver died. `config` is the validated config, handed on
    as it is (a deployment's JSON parameter is validated into one by Prefect, from the type hint)."""
    ws = Workspace(Path(workspace)).create()
    if resume_run_id:
        config = resume_run(resume_run_id, str(ws.root))
    dataset = check_dataset(config, str(ws.datasets))
    run_id = resume_run_id or start_run(config, str(ws.root), dataset, config_file)
    try:
        trained = train_on_ray(config, str(ws.root), dataset, run_id, ray_address)
        registered = register_model(config, run_id, trained["checkpoint_dir"], dataset, str(ws.datasets))
    except BaseException:
        MlflowClient().set_terminated(run_id, "FAILED")
        raise
    MlflowClient().set_terminated(run_id, "FINISHED")
    return {
        "run_id": run_id,
        "dataset": dataset,
        "train_metrics": trained["metrics"],
        "checkpoint_dir": trained["checkpoint_dir"],
        **registered,
    }
