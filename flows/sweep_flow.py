"""Sweep flow: many training runs of one config over a space of settings, on Ray Tune with early
stopping, each a training run nested under the sweep's MLflow run; the best trial's model is
registered and goes through the usual gate (`evaluate_flow`: champion only if it beats the
champion on val; test reported once).

The sweep's run holds the space, scheduler and budget as params, and at the end the best trial,
what the trials spent (`sweep.epochs_trained` of `sweep.epochs_budget`), a parallel-coordinates
plot and the trials' table. `resume_run_id` continues a sweep whose driver died
(`flows.ray_edge.sweep.resume`): finished trials are not run again.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from prefect import flow, get_run_logger, task

from cl_core.config import PipelineConfig, build_config
from cl_core.config.sweep_space import SweepSpace, describe
from cl_core.datasets import DatasetStore
from cl_core.evaluation.primary import PRIMARY_METRICS
from cl_core.evaluation.split_scores import GATE_SPLIT, split_key
from flows import plots, run_description
from flows.evaluate_flow import evaluate_flow
from flows.ingest_flow import ingest_flow, source_specs
from flows.mlflow_edge import tracking
from flows.mlflow_edge.headline_metrics import INTERVAL_ENDS
from flows.prefect_edge import progress, run_links
from flows.ray_edge import sweep
from flows.run_description import STAGE_TAG
from flows.train_flow import RESOLVED_CONFIG, check_dataset, register_model
from flows.workspace import Workspace

SWEEP_STAGE = "sweep"
SPACE_ARTIFACT = "sweep/space.json"
FOLDER_TAG = "sweep.folder"
BEST_TRIAL_TAG = "sweep.best_trial"
BEST_RUN_TAG = "sweep.best_run_id"


def _metric(config: PipelineConfig) -> tuple[str, str]:
    """(the gate's metric on val as rank 0 reports it, "val.<primary>"; "max" or "min")."""
    primary = PRIMARY_METRICS[config.data.modality]
    return split_key(GATE_SPLIT, primary.name), "max" if primary.higher_is_better else "min"


@task(name="start-sweep-run", retries=2, retry_delay_seconds=2)
def start_sweep_run(config: PipelineConfig, space: SweepSpace, workspace: str, dataset: dict[str, Any],
                    config_file: str | None, space_file: str | None) -> str:
    """The sweep's parent run: its space, scheduler and budget as params, the resolved config and
    space as artifacts (what `--resume` reads back)."""
    ws = Workspace(Path(workspace))
    tracking.use_experiment(ws, config.experiment_name)
    version = DatasetStore(ws.datasets).resolve(dataset["name"], dataset["version"])
    metric, mode = _metric(config)
    flow_run_id, flow_run_url = run_links.prefect_flow_run()
    name = f"sweep-{run_description.training_run_name(config, version.name)}"
    tags = {STAGE_TAG: SWEEP_STAGE, "modality": config.data.modality, "objective": config.loss.name,
            "dataset.name": version.name, "dataset.version": version.version}
    tags |= {key: value for key, value in (("prefect.flow_run_id", flow_run_id), ("prefect.flow_run_url", flow_run_url),
                                            ("git.commit", run_description.git_commit())) if value}
    scheduler = space.scheduler
    params = {"sweep.trials": space.trials, "sweep.max_concurrent": space.max_concurrent, "sweep.seed": space.seed,
              "sweep.scheduler": scheduler.name, "sweep.metric": f"eval.{metric}", "sweep.mode": mode,
              "sweep.epochs_per_trial": config.train.epochs}
    if scheduler.name == "asha":
        params |= {"sweep.grace_epochs": scheduler.grace_epochs, "sweep.reduction_factor": scheduler.reduction_factor}
    params |= {f"space.{key}": text for key, text in describe(space).items()}
    with mlflow.start_run(run_name=name, tags=tags) as run:
        mlflow.log_params(params)
        tracking.log_dataset_lineage(version)
        mlflow.log_dict(config.model_dump(mode="json"), RESOLVED_CONFIG)
        mlflow.log_dict(space.as_file(), SPACE_ARTIFACT)
        for path in filter(None, (config_file, space_file)):
            mlflow.log_artifact(path, "config")
        mlflow.set_tag(FOLDER_TAG, str(ws.sweeps / run.info.run_id))
    MlflowClient().update_run(run.info.run_id, status="RUNNING")
    return run.info.run_id


def read_sweep_run(run_id: str, workspace: Workspace) -> tuple[PipelineConfig, SweepSpace, Any]:
    """The config (dataset version pinned), space and run of an earlier sweep, to resume it."""
    mlflow.set_tracking_uri(workspace.tracking_uri)
    try:
        run = MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise LookupError(f"no MLflow run {run_id} at {mlflow.get_tracking_uri()}") from None
    if run.data.tags.get(STAGE_TAG) != SWEEP_STAGE:
        raise ValueError(f"run {run_id} is not a clpipe sweep run")
    if run.info.status == "FINISHED":
        raise ValueError(f"sweep {run_id} already finished; nothing to resume")
    logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{RESOLVED_CONFIG}")
    config = build_config(logged, {"data.version": run.data.tags["dataset.version"]},
                          origin=f"{RESOLVED_CONFIG} of run {run_id}")
    space = SweepSpace.model_validate(mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{SPACE_ARTIFACT}"))
    return config, space, run


def _plan(config: PipelineConfig, space: SweepSpace, ws: Workspace, run_id: str, ray_address: str | None) -> sweep.SweepPlan:
    metric, mode = _metric(config)
    experiment_id = MlflowClient().get_run(run_id).info.experiment_id
    return sweep.SweepPlan(base_config=config.model_dump(mode="json"), space=space, dataset_root=str(ws.datasets),
                           folder=str(ws.sweeps / run_id), tracking_uri=ws.tracking_uri, experiment_id=experiment_id,
                           sweep_run_id=run_id, metric=metric, mode=mode, ray_address=ray_address)


def best_trial(trials: list[sweep.TrialOutcome], mode: str) -> sweep.TrialOutcome:
    """The trial with the best last validation value (ties: the one that trained fewer epochs)."""
    scored = [trial for trial in trials if trial.error is None and trial.value is not None
              and math.isfinite(trial.value) and trial.checkpoint_path and trial.run_id]
    if not scored:
        errors = "; ".join(f"{trial.trial_id}: {trial.error}" for trial in trials if trial.error) or "none reported"
        raise RuntimeError(f"no trial finished with a validation score (errors: {errors})")
    sign = 1 if mode == "max" else -1
    return max(scored, key=lambda trial: (sign * trial.value, -trial.epochs))


def _plot_axes(trials: list[sweep.TrialOutcome], space: SweepSpace, metric: str) -> tuple[list[dict[str, float]], set[str]]:
    """Each trial's values as numbers: a choice of non-numbers by its position in the choices."""
    rows = []
    for trial in trials:
        row = {metric: float(trial.value)}
        for key, distribution in space.params.items():
            value = trial.overrides[key]
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            row[key] = float(value) if numeric else float(list(distribution.args).index(value))
        rows.append(row)
    return rows, {key for key, distribution in space.params.items() if distribution.kind == "loguniform"}


@task(name="record-sweep")
def record_sweep(plan: sweep.SweepPlan, trials: list[sweep.TrialOutcome], best: sweep.TrialOutcome) -> dict[str, Any]:
    """The sweep's results on its run: the best trial, the epochs spent, the plot and the table."""
    epochs = plan.config.train.epochs
    spent = sum(trial.epochs_trained for trial in trials)
    table = [{"trial_id": t.trial_id, "run_id": t.run_id, **t.overrides, "epochs": t.epochs,
              "epochs_trained": t.epochs_trained, plan.column: t.value, "stopped_early": t.stopped_early,
              "error": t.error, "seconds": round(t.seconds, 1)}
             for t in sorted(trials, key=lambda t: t.trial_id)]
    summary = {
        "sweep.trials_finished": sum(1 for t in trials if t.error is None and not t.stopped_early),
        "sweep.trials_stopped_early": sum(1 for t in trials if t.stopped_early),
        "sweep.trials_failed": sum(1 for t in trials if t.error),
        "sweep.epochs_trained": spent, "sweep.epochs_budget": epochs * len(trials),
        f"sweep.best.{plan.column}": best.value,
    }
    client = MlflowClient()
    with mlflow.start_run(run_id=plan.sweep_run_id), tempfile.TemporaryDirectory() as folder:
        mlflow.log_metrics({key: float(value) for key, value in summary.items()})
        mlflow.set_tags({BEST_TRIAL_TAG: best.trial_id, BEST_RUN_TAG: best.run_id or ""})
        mlflow.log_dict(table, "sweep/trials.json")
        plotted = [t for t in trials if t.value is not None and math.isfinite(t.value)]
        if plotted:
            rows, log_axes = _plot_axes(plotted, plan.space, plan.column)
            path = plots.parallel_coordinates(rows, list(plan.space.params), log_axes, plan.column,
                                              [t.stopped_early for t in plotted], "sweep trials",
                                              Path(folder) / "parallel_coordinates.png")
            mlflow.log_artifact(str(path), "sweep")
    client.set_terminated(plan.sweep_run_id, "FINISHED")
    return {"trials": table, **summary}


@flow(name="sweep")
def sweep_flow(config: PipelineConfig | None, space: SweepSpace | None, workspace: str, ray_address: str | None = None,
               config_file: str | None = None, space_file: str | None = None,
               resume_run_id: str | None = None) -> dict[str, Any]:
    """Sweep `space` over `config` (both validated), or continue the sweep `resume_run_id`."""
    ws = Workspace(Path(workspace)).create()
    log = get_run_logger()
    if resume_run_id:
        config, space, _ = read_sweep_run(resume_run_id, ws)
    else:
        data = config.data
        ingested = ingest_flow(data.source, data.name, str(ws.root), limit=data.limit,
                               max_bad_fraction=data.max_bad_fraction, **source_specs(data), engine=config.ingest.engine,
                               ray_address=ray_address)
        config = space.budgeted(config.model_copy(update={"data": data.model_copy(update={"version": ingested["version"]})}))
    dataset = check_dataset(config, str(ws.datasets))
    run_id = resume_run_id or start_sweep_run(config, space, str(ws.root), dataset, config_file, space_file)
    plan = _plan(config, space, ws, run_id, ray_address)
    progress.report("sweep", 0, space.trials, "trials", f"{'resuming' if resume_run_id else 'starting'} sweep {run_id}")
    started = time.perf_counter()
    try:
        grid = sweep.resume(plan) if resume_run_id else sweep.run(plan)
        trials = sweep.finish_trial_runs(plan, sweep.outcomes(grid, plan))
        best = best_trial(trials, plan.mode)
        progress.finish("sweep", f"best trial {best.trial_id}: {plan.column} {best.value:.4f}")
        log.info("best trial %s (%s): %s=%.4f", best.trial_id, best.overrides, plan.column, best.value)
        best_config = sweep.trial_config(plan, best.overrides)
        registered = register_model(best_config, best.run_id, best.checkpoint_path, dataset, str(ws.datasets))
        recorded = record_sweep(plan, trials, best)
    except BaseException:
        MlflowClient().set_terminated(run_id, "FAILED")
        raise
    evaluated = evaluate_flow(f"{registered['model_name']}/{registered['model_version']}", dataset["name"], str(ws.root),
                              dataset["version"], config.eval, config.views, config.registry)
    return {
        "sweep_run_id": run_id, "dataset": dataset, "metric": plan.column, "seconds": time.perf_counter() - started,
        "best": {"trial_id": best.trial_id, "run_id": best.run_id, "overrides": best.overrides,
                 "value": best.value, "interval": [best.metrics.get(f"{plan.metric}.{end}") for end in INTERVAL_ENDS],
                 "epochs": best.epochs},
        **recorded, **registered, "promotion": evaluated["promotion"],
    }


@flow(name="sweep-from-files")
def sweep_from_files(workspace: str, config_file: str | None = None, space_file: str = "configs/spaces/digits.yaml",
                     ray_address: str | None = None) -> dict[str, Any]:
    """`clpipe sweep --config FILE --space SPACE` as a deployment runs it: plain-string parameters,
    both files read and validated when the run starts."""
    from cl_core.config import load_config
    from cl_core.config.sweep_space import load_space

    config = load_config(config_file)
    return sweep_flow(config, load_space(space_file, config), workspace, ray_address, config_file, space_file)
