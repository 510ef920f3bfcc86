"""The result of scoring a registered model version on a dataset version: which model, which
data, then what the modality's evaluation protocol returned."""

from __future__ import annotations

from typing import Any

from cl_core.datasets import DatasetVersion

# The keys every protocol's result holds, in the order a scored result lists them.
# (`cl_core.evaluation.split_scores.protocol_result` says what each holds.)
PROTOCOL_KEYS = ("splits", "primary_metric", "metrics", "intervals", "baseline")


def scored_result(version: Any, dataset: DatasetVersion, evaluated: dict[str, Any]) -> dict[str, Any]:
    """The model version (a registry ModelVersion), the dataset version and its modality, then what the protocol
    returned: PROTOCOL_KEYS first, then whatever else it gives (images: the 2-D map)."""
    keys = (*PROTOCOL_KEYS, *(key for key in evaluated if key not in PROTOCOL_KEYS))
    return {
        "model_name": version.name,
        "model_version": str(version.version),
        "source_run_id": version.run_id,
        "dataset": {"name": dataset.name, "version": dataset.version},
        "modality": dataset.kind,
    } | {key: evaluated[key] for key in keys}
