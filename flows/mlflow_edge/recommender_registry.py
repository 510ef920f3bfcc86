"""Logging a trained two-tower recommender into MLflow as a pyfunc (`flows/mlflow_edge/recommender_pyfunc.py`).

Beside the weights it carries what it needs to embed users and items by their source ids
without the dataset: the training version's id vocabularies, feature codecs and encoded side
features, and every user's seen items as of training (`TwoTowerEncoder.save`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec
from mlflow.types.schema import AnyType, Array

import cl_core
from cl_core.datasets import DatasetVersion
from cl_core.datasets.sources.interactions.data import load_interactions
from cl_core.modalities.interactions import INTERACTIONS
from cl_core.models.spec import TwoTowerModelSpec
from cl_core.recommender.encoder import TwoTowerEncoder
from flows.mlflow_edge.pyfuncs import PYFUNCS

RECOMMENDER_PYFUNC_FILE = PYFUNCS[INTERACTIONS.name].file


def recommender_signature(embedding_dim: int) -> ModelSignature:
    """Input: a "user" or an "item" column of source ids, optionally a user's "history" and
    raw "features"; output: float32 (N, D)."""
    return ModelSignature(
        inputs=Schema([
            ColSpec("string", "user", required=False),
            ColSpec("string", "item", required=False),
            ColSpec(Array("string"), "history", required=False),
            ColSpec(AnyType(), "features", required=False),
        ]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, embedding_dim))]),
    )


def recommender_model(training_state: dict[str, Any], dataset: DatasetVersion) -> Any:
    """The recommender pyfunc's Python model of a training checkpoint on `dataset`, in memory:
    what the registry would load, without logging it (a sweep's per-epoch validation)."""
    from flows.mlflow_edge.recommender_pyfunc import RecommenderModel

    spec = TwoTowerModelSpec.from_dict(training_state["model_meta"])
    encoder = TwoTowerEncoder.from_dataset(spec, training_state["model"], load_interactions(dataset))
    with tempfile.TemporaryDirectory() as folder:
        encoder.save(folder)
        return RecommenderModel().configure({}, folder)


def log_recommender(training_state: dict[str, Any], dataset: DatasetVersion, name: str = "model") -> tuple[Any, int]:
    """Log the two towers of `training_state`, trained on `dataset`, into the active run as a
    pyfunc; returns (ModelInfo, embedding dimension)."""
    spec = TwoTowerModelSpec.from_dict(training_state["model_meta"])
    encoder = TwoTowerEncoder.from_dataset(spec, training_state["model"], load_interactions(dataset))
    with tempfile.TemporaryDirectory() as folder:
        encoder.save(folder)
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(RECOMMENDER_PYFUNC_FILE),
            artifacts={"encoder": folder},
            model_config={"modality": spec.modality, "embedding_dim": spec.embedding_dim,
                          "history_length": spec.history_length, "dataset": f"{dataset.name}@{dataset.version}"},
            code_paths=[str(Path(cl_core.__file__).parent)],
            signature=recommender_signature(spec.embedding_dim),
            pip_requirements=[
                f"torch=={torch.__version__.split('+')[0]}",
                "numpy", "pandas", "safetensors", "pyarrow", "pydantic", "pyyaml",
            ],
        )
    return info, spec.embedding_dim
