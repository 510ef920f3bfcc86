"""`clpipe compare`: the training runs of an experiment side by side, best first; with a sweep's
run id, that sweep's trials, with the values each one was given.

Reads the MLflow store only (no Prefect, no Ray). Training runs are the top-level rows of the
MLflow runs table (a sweep's trials are nested under the sweep's run); their nested evaluation
and export runs are left out."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from flows.mlflow_edge import headline_metrics
from flows.run_description import RUN_ID, STAGE_TAG, STOPPED_EARLY_TAG, SWEEP_TAG


class CompareError(LookupError):
    """The experiment is unknown or holds no training runs; the message says which exist."""


@dataclass(frozen=True)
class ComparedRun:
    run_id: str
    name: str
    status: str
    objective: str
    modality: str
    dataset: str  # NAME@VERSION
    seconds: float | None  # wall time of the run, start to end (to now while it runs)
    model_version: str | None  # NAME/VERSION it registered, if any
    aliases: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # a sweep's trial: the values it was given
    stopped_early: bool | None = None  # a sweep's trial: whether its scheduler stopped it


def choose_experiment(client: MlflowClient, name: str | None) -> Any:
    """The experiment called `name`; without a name, the one whose training run started last."""
    if name:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise CompareError(f"no experiment {name!r}; experiments: {_experiment_names(client)}")
        return experiment
    newest = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], f"tags.`{STAGE_TAG}` = 'train'",
        max_results=1, order_by=["attributes.start_time DESC"],
    )
    if not newest:
        raise CompareError(f"no training runs yet; experiments: {_experiment_names(client)}")
    return client.get_experiment(newest[0].info.experiment_id)


def _experiment_names(client: MlflowClient) -> str:
    return ", ".join(sorted(e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY))) or "none"


def _registered(client: MlflowClient, run_ids: set[str]) -> dict[str, Any]:
    """run id -> the model version registered from it (one per clpipe training run)."""
    versions = {}
    for version in client.search_model_versions(max_results=10_000):
        if version.run_id in run_ids:
            versions[version.run_id] = version
    return versions


def compared_runs(client: MlflowClient, experiment_id: str, sweep_run_id: str | None = None,
                  params: tuple[str, ...] = ()) -> list[ComparedRun]:
    """The experiment's training runs (only the trials of `sweep_run_id` when given), each with
    the values of `params`."""
    query = f"tags.`{STAGE_TAG}` = 'train'"
    if sweep_run_id:
        query += f" and tags.`{SWEEP_TAG}` = '{sweep_run_id}'"
    runs = client.search_runs([experiment_id], query, max_results=10_000)
    versions = _registered(client, {run.info.run_id for run in runs})
    now_ms = time.time() * 1000
    compared = []
    for run in runs:
        tags, info = run.data.tags, run.info
        end = info.end_time or (now_ms if info.status == "RUNNING" else None)
        version = versions.get(info.run_id)
        # Aliases from the version itself: search results leave them out on some stores.
        aliases = sorted(client.get_model_version(version.name, version.version).aliases) if version else []
        compared.append(ComparedRun(
            run_id=info.run_id, name=info.run_name, status=info.status, objective=tags.get("objective", "?"),
            modality=tags.get("modality", "?"), dataset=f"{tags.get('dataset.name', '?')}@{tags.get('dataset.version', '?')}",
            seconds=(end - info.start_time) / 1000 if end else None,
            model_version=f"{version.name}/{version.version}" if version else None, aliases=aliases,
            metrics=_headline(run.data.metrics), params={key: run.data.params.get(key, "-") for key in params},
            stopped_early={"true": True, "false": False}.get(tags.get(STOPPED_EARLY_TAG, "")),
        ))
    return compared


def _headline(logged: dict[str, float]) -> dict[str, float]:
    """A run's values of the columns; a run logged before validation was scored separately shows
    its `eval.<metric>` (the test split's) in the test column (`headline_metrics.LEGACY`)."""
    metrics = {key: value for key, value in logged.items() if key in headline_metrics.COLUMNS}
    for old, new in headline_metrics.LEGACY.items():
        if old in logged and new not in logged:
            metrics[new] = logged[old]
    return metrics


def best_first(runs: list[ComparedRun], metric: str) -> list[ComparedRun]:
    """Best `metric` first (highest, or lowest for a primary metric where lower is better); runs
    without it last, newest first among equals."""
    sign = -1.0 if headline_metrics.higher_is_better(metric) else 1.0
    return sorted(runs, key=lambda run: (metric not in run.metrics, sign * run.metrics.get(metric, 0.0)))


def _sweep(client: MlflowClient, run_id: str) -> Any:
    """The sweep run `run_id`, or a CompareError saying why it is none."""
    if not RUN_ID.fullmatch(run_id):  # the id goes into a search filter: MLflow's own id shape only
        raise CompareError(f"{run_id!r} is not an MLflow run id")
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise CompareError(f"no run {run_id} in this MLflow store") from None
    if run.data.tags.get(STAGE_TAG) != "sweep":
        raise CompareError(f"run {run_id} is not a sweep (its stage is {run.data.tags.get(STAGE_TAG, 'unset')!r})")
    return run


def compare(client: MlflowClient, experiment_name: str | None, metric: str | None,
            sweep_run_id: str | None = None) -> dict[str, Any]:
    if sweep_run_id:
        sweep = _sweep(client, sweep_run_id)
        experiment = client.get_experiment(sweep.info.experiment_id)
        params = tuple(key.removeprefix("space.") for key in sorted(sweep.data.params) if key.startswith("space."))
        metric = metric or sweep.data.params.get("sweep.metric")
    else:
        experiment, params = choose_experiment(client, experiment_name), ()
    runs = compared_runs(client, experiment.experiment_id, sweep_run_id, params)
    if sweep_run_id and not runs:
        raise CompareError(f"sweep {sweep_run_id} has no trials yet")
    available = sorted({key for run in runs for key in run.metrics})
    chosen = metric or headline_metrics.primary_metric([run.modality for run in runs], available)
    return {
        "experiment": experiment.name, "experiment_id": experiment.experiment_id, "metric": chosen,
        "sweep_run_id": sweep_run_id, "params": list(params),
        "columns": [key for key in headline_metrics.COLUMNS if key in available],
        "runs": [asdict(run) for run in best_first(runs, chosen)],
    }


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _param(text: str | None) -> str:
    """A trial's logged value: a number in 4 significant digits, anything else as it is."""
    try:
        return f"{float(text):.4g}"
    except (TypeError, ValueError):
        return "-" if text is None else text


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def format_comparison(compared: dict[str, Any]) -> str:
    """A fixed-width table, one training run per row, best first by the chosen metric."""
    columns, params, sweep = compared["columns"], compared.get("params", []), compared.get("sweep_run_id")
    header = ["run", *params, "objective", "dataset", *columns, "duration", "model", "aliases", "status"]
    rows = [
        [run["name"], *(_param(run["params"].get(key)) for key in params), run["objective"], run["dataset"],
         *(_cell(run["metrics"].get(key)) for key in columns), _duration(run["seconds"]), run["model_version"] or "-",
         ",".join(run["aliases"]) or "-", run["status"] + (" (stopped early)" if run.get("stopped_early") else "")]
        for run in compared["runs"]
    ]
    widths = [max(len(str(line[i])) for line in (header, *rows)) for i in range(len(header))]
    what = f", sweep {sweep} ({len(rows)} trials)" if sweep else f" ({len(rows)} training runs)"
    text = [f"experiment {compared['experiment']}{what}, best first by {compared['metric']}", ""]
    text += ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in (header, *rows)]
    return "\n".join(text)


def compare_command(tracking_uri: str, experiment: str | None, metric: str | None, as_json: bool,
                    sweep_run_id: str | None = None) -> int:
    """`clpipe compare`: print the table (or one JSON line); 1 with a one-line message on stderr
    when there is nothing to compare."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).exists():
        print(f"clpipe compare failed: no MLflow store at {tracking_uri}", file=sys.stderr)
        return 1
    try:
        compared = compare(MlflowClient(tracking_uri), experiment, metric, sweep_run_id)
    except CompareError as error:
        print(f"clpipe compare failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"command": "compare", **compared}, default=str) if as_json else format_comparison(compared))
    return 0
