"""MLflow experiment/run setup, parameter flattening and dataset lineage."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient

from cl_core.datasets import DatasetVersion
from flows.workspace import Workspace


def use_experiment(workspace: Workspace, name: str) -> str:
    """Select (creating if needed) the experiment `name`, with artifacts inside the workspace."""
    mlflow.set_tracking_uri(workspace.tracking_uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        # Without an explicit location the sqlite store puts artifacts in ./mlruns of the CWD.
        location = (workspace.mlflow_artifacts / name).as_uri() if workspace.tracking_uri.startswith("sqlite") else None
        experiment_id = client.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1}} -> {"train.lr": 1}; sequences become strings."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value if isinstance(value, (int, float, str, bool)) or value is None else str(list(value))
    return flat


def log_dataset_lineage(dataset: DatasetVersion, context: str = "training") -> None:
    """Record the dataset name, version and digest on the active run (mlflow.data)."""
    # Floats: MLflow warns that integer columns cannot hold missing values.
    summary = pd.DataFrame(
        [{"split": split, "rows": float(rows)} for split, rows in sorted(dataset.splits.items())]
    )
    with warnings.catch_warnings():
        # A local path matches two equivalent artifact source types; MLflow picks one and warns.
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways.*")
        lineage = mlflow.data.from_pandas(
            summary, source=str(dataset.path), name=f"{dataset.name}@{dataset.version}", digest=dataset.version
        )
    mlflow.log_input(lineage, context=context)
    mlflow.set_tags({
        "dataset.name": dataset.name,
        "dataset.version": dataset.version,
        "dataset.path": str(dataset.path),
        "dataset.rows": str(dataset.num_rows()),
    })


def metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in sorted(MlflowClient().get_metric_history(run_id, key), key=lambda m: m.step)]
