"""The Ray Tune side of a sweep: each trial is one training run of the usual worker loop (Ray
Train inside a Tune function, as Ray 2.60 documents it), reporting the gate's validation metric
after every epoch so that ASHA can stop weak trials early.

- A trial's config is the sweep's resolved config with the trial's sampled values on top,
  validated again (`build_config`); its MLflow run is a training run nested under the sweep's run
  (`trial_run`), found again by its Tune trial id when the trial is retried or the sweep resumed.
- A trial's Ray Train run is named after its trial id under the sweep's folder, so a retried
  trial (its driver lost) continues from its last checkpoint; a lost worker is Ray Train's to
  restart (`train.max_failures`, at least 1 in a sweep).
- `run` starts a sweep; `resume` continues one whose driver died (`Tuner.restore`): finished
  trials are kept, unfinished and errored ones continue from their checkpoints.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag

from cl_core.config import PipelineConfig, build_config
from cl_core.config.sweep_space import Distribution, SweepSpace
from cl_core.datasets import DatasetStore
from cl_core.durable_files import replace_atomically
from flows import run_description
from flows.mlflow_edge import tracking
from flows.mlflow_edge.headline_metrics import INTERVAL_ENDS
from flows.prefect_edge import progress
from flows.ray_edge import train_launch
from flows.ray_edge.cluster import ensure_ray
from flows.ray_edge.epoch_validation import EPOCHS_DONE
from flows.run_description import PARENT_TAG, STOPPED_EARLY_TAG, SWEEP_TAG, TRIAL_TAG

TUNE_FOLDER = "tune"  # the Tune experiment, under the sweep's folder
TRIALS_FOLDER = "trials"  # the trials' Ray Train runs, under the sweep's folder
OVERRIDES = "overrides"  # the param_space key holding the sampled dotted keys
DONE_FILE = "done.json"  # a finished trial's last report, in its Train run's folder
CHECKPOINT_PATH = "checkpoint_path"  # where TuneReportCallback puts a report's checkpoint


@dataclass(frozen=True)
class SweepPlan:
    """What every trial needs, in plain values (pickled to Tune's trial actors)."""

    base_config: dict[str, Any]  # the resolved config, its data.version pinned
    space: SweepSpace
    dataset_root: str
    folder: str  # the sweep's own folder: Tune's experiment and the trials' checkpoints
    tracking_uri: str
    experiment_id: str
    sweep_run_id: str
    metric: str  # "val.<primary>": what rank 0 reports after each epoch (`epoch_validation`)
    mode: str  # "max" or "min"
    ray_address: str | None = None

    @property
    def config(self) -> PipelineConfig:
        return build_config(self.base_config, origin="the sweep's resolved config")

    @property
    def column(self) -> str:
        """The metric's stable MLflow column, "eval.val.<primary>", which each trial's run gets
        with the value the sweep judged it by."""
        return f"eval.{self.metric}"

    @property
    def tune_path(self) -> Path:
        return Path(self.folder) / TUNE_FOLDER


def tune_distribution(distribution: Distribution) -> Any:
    from ray import tune

    if distribution.kind == "choice":
        return tune.choice(list(distribution.args))
    return {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}[distribution.kind](
        *distribution.args)


def param_space(space: SweepSpace) -> dict[str, Any]:
    return {OVERRIDES: {key: tune_distribution(distribution) for key, distribution in space.params.items()}}


def trial_config(plan: SweepPlan, overrides: dict[str, Any]) -> PipelineConfig:
    """The sweep's config with a trial's values on top. Each value alone was checked before the
    sweep started; a combination the config refuses fails this trial only, naming both."""
    config = build_config(plan.base_config, overrides, origin=f"a trial with {overrides}")
    train = config.train
    # A trial recovers from a lost worker on its own (Ray Train restarts the group from the last checkpoint).
    if train.max_failures == 0:
        config = config.model_copy(update={"train": train.model_copy(update={"max_failures": 1})})
    return config


def trial_run(plan: SweepPlan, trial_id: str, config: PipelineConfig, overrides: dict[str, Any]) -> str:
    """The MLflow run of trial `trial_id` (a training run nested under the sweep's run): the one
    an earlier attempt created, else a new one with the config's params like any training run."""
    client = MlflowClient(plan.tracking_uri)
    found = client.search_runs([plan.experiment_id], f"tags.`{SWEEP_TAG}` = '{plan.sweep_run_id}' and "
                               f"tags.`{TRIAL_TAG}` = '{trial_id}'", max_results=1)
    if found:
        client.update_run(found[0].info.run_id, status="RUNNING")
        return found[0].info.run_id
    data = config.data
    dataset = DatasetStore(Path(plan.dataset_root)).resolve(data.name, data.version)
    tags = run_description.training_tags(config, dataset.name, dataset.version, None, None, None)
    tags |= {PARENT_TAG: plan.sweep_run_id, SWEEP_TAG: plan.sweep_run_id, TRIAL_TAG: trial_id}
    tags |= {f"sweep.param.{key}": str(value) for key, value in overrides.items()}
    mlflow.set_tracking_uri(plan.tracking_uri)
    with mlflow.start_run(experiment_id=plan.experiment_id, run_name=f"trial-{trial_id}", tags=tags) as run:
        mlflow.log_params(tracking.flatten(config.model_dump(mode="json")))
        tracking.log_dataset_lineage(dataset)
        mlflow.log_dict(config.model_dump(mode="json"), "config/resolved.json")
    client.update_run(run.info.run_id, status="RUNNING")
    return run.info.run_id


def run_trial(tune_config: dict[str, Any], plan: SweepPlan) -> None:
    """One trial, in its Tune actor: build its config, find or start its MLflow run, train with
    per-epoch validation, each report forwarded to Tune (`TuneReportCallback`)."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    overrides = dict(tune_config[OVERRIDES])
    config = trial_config(plan, overrides)
    trial_id = ray.tune.get_context().get_trial_id()
    name = f"trial-{trial_id}"
    done = Path(plan.folder) / TRIALS_FOLDER / name / DONE_FILE
    if done.is_file():
        # It finished after Tune last saved the sweep's state (every 10 s at most), then the
        # sweep's driver died: report its result again instead of training it again.
        ray.tune.report(json.loads(done.read_text(encoding="utf-8")))
        return
    run_id = trial_run(plan, trial_id, config, overrides)
    dataset = DatasetStore(Path(plan.dataset_root)).resolve(config.data.name, config.data.version)
    outcome = train_launch.fit(config, dataset, Path(plan.dataset_root), Path(plan.folder) / TRIALS_FOLDER, run_id,
                               plan.tracking_uri, plan.ray_address, name=name, validate=True,
                               callbacks=[TuneReportCallback()])
    final = {key: value for key, value in outcome.final_metrics.items() if isinstance(value, (int, float, str))}
    replace_atomically(done, json.dumps({**final, CHECKPOINT_PATH: str(outcome.checkpoint_dir)}))


def _scheduler(space: SweepSpace, epochs: int) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if space.scheduler.name == "none":
        return FIFOScheduler()
    return ASHAScheduler(time_attr=EPOCHS_DONE, max_t=epochs, grace_period=space.scheduler.grace_epochs,
                         reduction_factor=space.scheduler.reduction_factor)


def _trainable(plan: SweepPlan) -> Any:
    from ray import tune

    # Tune's default of 1 logical CPU for the trial, which only drives its Ray Train run: counted
    # in `_logical_cpus`, so the workers still find theirs.
    return tune.with_parameters(run_trial, plan=plan)


def _logical_cpus(plan: SweepPlan) -> int:
    """Enough logical CPUs for `max_concurrent` trials: each one's worker group, its Tune actor
    and its Train controller."""
    train = plan.config.train
    return int(plan.space.max_concurrent * (train.workers * train.cpus_per_worker + 2)) + 1


def _progress_callback(plan: SweepPlan) -> Any:
    """A Tune callback (it runs in this process, beside the console's listener) that reports the
    trials ended so far and the best value reported yet as the sweep's progress."""
    from ray import tune

    sign = 1 if plan.mode == "max" else -1

    class TrialProgress(tune.Callback):
        def __init__(self) -> None:
            self.best: float | None = None

        def _report(self, trials: list[Any]) -> None:
            ended = sum(trial.status in ("TERMINATED", "ERROR") for trial in trials)
            best = "none yet" if self.best is None else f"{self.best:.4f}"
            progress.report("sweep", ended, plan.space.trials, "trials", f"best {plan.column} {best}")

        def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
            value = result.get(plan.metric)
            if value is not None and (self.best is None or sign * value > sign * self.best):
                self.best = value
            self._report(trials)

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self._report(trials)

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self._report(trials)

    return TrialProgress()


def _tune_run_config(plan: SweepPlan) -> Any:
    from ray import tune

    return tune.RunConfig(name=TUNE_FOLDER, storage_path=plan.folder, verbose=1, callbacks=[_progress_callback(plan)],
                          # A trial whose driver failed starts again; its Train run resumes from its checkpoint.
                          failure_config=tune.FailureConfig(max_failures=2))


def run(plan: SweepPlan) -> Any:
    """Run the sweep's trials; the ResultGrid."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    ensure_ray(plan.ray_address, logical_cpus=_logical_cpus(plan))
    space = plan.space
    tuner = tune.Tuner(
        _trainable(plan),
        param_space=param_space(space),
        tune_config=tune.TuneConfig(
            metric=plan.metric, mode=plan.mode, num_samples=space.trials, max_concurrent_trials=space.max_concurrent,
            scheduler=_scheduler(space, plan.config.train.epochs),
            search_alg=BasicVariantGenerator(random_state=space.seed, max_concurrent=space.max_concurrent),
        ),
        run_config=_tune_run_config(plan),
    )
    return tuner.fit()


def resume(plan: SweepPlan) -> Any:
    """Continue the sweep at `plan.tune_path` whose driver stopped: finished trials are kept as
    they are; unfinished and errored ones continue (their Train runs from their checkpoints)."""
    from ray import tune

    if not tune.Tuner.can_restore(str(plan.tune_path)):
        raise FileNotFoundError(f"no Tune experiment to resume at {plan.tune_path}")
    ensure_ray(plan.ray_address, logical_cpus=_logical_cpus(plan))
    tuner = tune.Tuner.restore(str(plan.tune_path), _trainable(plan), resume_unfinished=True, resume_errored=True,
                               param_space=param_space(plan.space))
    return tuner.fit()


@dataclass(frozen=True)
class TrialOutcome:
    """One trial as the sweep ended it."""

    trial_id: str
    overrides: dict[str, Any]
    epochs: int  # epochs the scheduler saw it report
    value: float | None  # its last validation value of the sweep's metric
    stopped_early: bool
    error: str | None
    checkpoint_path: str | None
    seconds: float
    metrics: dict[str, Any]
    run_id: str | None = None  # its MLflow run (`finish_trial_runs`)
    # Epochs it trained to the end, as its run logged them: one more than `epochs` when the
    # scheduler's stop reached it while it trained on (the stop is asynchronous).
    epochs_trained: int = 0


def outcomes(grid: Any, plan: SweepPlan) -> list[TrialOutcome]:
    epochs = plan.config.train.epochs
    found = []
    for result in grid:
        metrics = dict(result.metrics or {})
        done = int(metrics.get(EPOCHS_DONE, 0))
        trial_id = metrics.get("trial_id") or Path(result.path).name
        found.append(TrialOutcome(
            trial_id=trial_id, overrides=dict((result.config or {}).get(OVERRIDES, {})), epochs=done,
            value=metrics.get(plan.metric), stopped_early=result.error is None and done < epochs,
            error=None if result.error is None else f"{type(result.error).__name__}: {result.error}",
            checkpoint_path=metrics.get(CHECKPOINT_PATH), seconds=float(metrics.get("time_total_s", 0.0)),
            metrics=metrics,
        ))
    return found


def finish_trial_runs(plan: SweepPlan, trials: list[TrialOutcome]) -> list[TrialOutcome]:
    """Tag and close each trial's MLflow run; the trials with their run ids and the epochs each
    trained (a trial whose run never started, a combination of values the config refuses, has none)."""
    client = MlflowClient(plan.tracking_uri)
    runs = client.search_runs([plan.experiment_id], f"tags.`{SWEEP_TAG}` = '{plan.sweep_run_id}'", max_results=10_000)
    by_trial = {run.data.tags[TRIAL_TAG]: run for run in runs if TRIAL_TAG in run.data.tags}
    now = int(time.time() * 1000)
    finished = []
    for trial in trials:
        run = by_trial.get(trial.trial_id)
        if run is None:
            finished.append(trial)
            continue
        trained = len({m.step for m in client.get_metric_history(run.info.run_id, "loss")})
        metrics = [Metric("train.seconds", trial.seconds, now, 0), Metric("sweep.epochs_trained", float(trained), now, 0)]
        # The stable columns: the value the sweep judged the trial by (its last report), with its interval.
        metrics += [Metric(f"eval.{key}", float(trial.metrics[key]), now, 0)
                    for key in (plan.metric, *(f"{plan.metric}.{end}" for end in INTERVAL_ENDS)) if key in trial.metrics]
        if "samples_per_s" in trial.metrics:
            metrics.append(Metric("train.samples_per_s", float(trial.metrics["samples_per_s"]), now, 0))
        client.log_batch(run.info.run_id, metrics=metrics,
                         tags=[RunTag(STOPPED_EARLY_TAG, str(trial.stopped_early).lower())])
        if run.info.status != "FINISHED":
            client.set_terminated(run.info.run_id, "FAILED" if trial.error else "FINISHED")
        finished.append(replace(trial, run_id=run.info.run_id, epochs_trained=trained))
    return finished
