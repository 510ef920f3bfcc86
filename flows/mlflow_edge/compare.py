"""`clpipe compare`: the training runs of an experiment side by side, best first.

Reads the MLflow store only (no Prefect, no Ray). Training runs are the top-level rows of the
MLflow runs table; their nested evaluation and export runs are left out."""

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

from flows.mlflow_edge import headline_metrics
from flows.run_description import STAGE_TAG


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


def compared_runs(client: MlflowClient, experiment_id: str) -> list[ComparedRun]:
    runs = client.search_runs([experiment_id], f"tags.`{STAGE_TAG}` = 'train'", max_results=10_000)
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
            metrics=_headline(run.data.metrics),
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


def compare(client: MlflowClient, experiment_name: str | None, metric: str | None) -> dict[str, Any]:
    experiment = choose_experiment(client, experiment_name)
    runs = compared_runs(client, experiment.experiment_id)
    available = sorted({key for run in runs for key in run.metrics})
    chosen = metric or headline_metrics.primary_metric([run.modality for run in runs], available)
    return {
        "experiment": experiment.name, "experiment_id": experiment.experiment_id, "metric": chosen,
        "columns": [key for key in headline_metrics.COLUMNS if key in available],
        "runs": [asdict(run) for run in best_first(runs, chosen)],
    }


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def format_comparison(compared: dict[str, Any]) -> str:
    """A fixed-width table, one training run per row, best first by the chosen metric."""
    columns = compared["columns"]
    header = ["run", "objective", "dataset", *columns, "duration", "model", "aliases", "status"]
    rows = [
        [run["name"], run["objective"], run["dataset"], *(_cell(run["metrics"].get(key)) for key in columns),
         _duration(run["seconds"]), run["model_version"] or "-", ",".join(run["aliases"]) or "-", run["status"]]
        for run in compared["runs"]
    ]
    widths = [max(len(str(line[i])) for line in (header, *rows)) for i in range(len(header))]
    text = [f"experiment {compared['experiment']} ({len(rows)} training runs), best first by {compared['metric']}", ""]
    text += ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in (header, *rows)]
    return "\n".join(text)


def compare_command(tracking_uri: str, experiment: str | None, metric: str | None, as_json: bool) -> int:
    """`clpipe compare`: print the table (or one JSON line); 1 with a one-line message on stderr
    when there is nothing to compare."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).exists():
        print(f"clpipe compare failed: no MLflow store at {tracking_uri}", file=sys.stderr)
        return 1
    try:
        compared = compare(MlflowClient(tracking_uri), experiment, metric)
    except CompareError as error:
        print(f"clpipe compare failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"command": "compare", **compared}, default=str) if as_json else format_comparison(compared))
    return 0
