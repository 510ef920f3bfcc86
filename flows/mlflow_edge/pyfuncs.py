"""How MLflow holds each modality's model: the one table of the per-modality MLflow code, keyed by
the records' names (`cl_core.modalities`). A new modality's pyfunc plugs in here and nowhere
else: its "models from code" file, how a checkpoint is logged as it, the DataFrame its `predict`
takes, its embedding width, and what its evaluation protocol needs of it beyond `embed`.

Everything else in `flows/` reads a model through this table: registering (`registry.log_embedder`),
embedding a table (`flows.table_runs.load_embedder`) and scoring (`flows.evaluate_flow`). The
entries read the attributes of a loaded pyfunc's Python model, which a model registered by an
earlier release carries in its own copy of the pyfunc file: they ask only for what every
released copy has."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from cl_core.datasets import DatasetVersion
from cl_core.modalities import MODALITIES
from cl_core.modalities.image import IMAGE
from cl_core.modalities.interactions import INTERACTIONS
from cl_core.modalities.text import TEXT

Embed = Callable[[list[Any]], np.ndarray]  # the model's inputs -> (N, D) float32


@dataclass(frozen=True)
class Pyfunc:
    """One modality's pyfunc: the model MLflow registers, loads and serves."""

    file: Path  # logged as `python_model` ("models from code"), with `cl_core` as its code path
    # (training checkpoint, the DatasetVersion it trained on) -> (ModelInfo, embedding dimension)
    log: Callable[[dict[str, Any], DatasetVersion | None], tuple[Any, int]]
    # the model's inputs (the values of the record's `input_column`) -> the DataFrame `predict` takes
    frame: Callable[[list[Any]], pd.DataFrame]
    dimension: Callable[[Any], int]  # the unwrapped Python model -> its embedding dimension
    # (the unwrapped Python model, this entry) -> the keywords the record's protocol's `evaluate`
    # takes beyond `embed` (its baselines, the views it embeds)
    protocol_inputs: Callable[[Any, Pyfunc], dict[str, Any]]
    # (training checkpoint, the DatasetVersion it trained on) -> the Python model `log` would
    # register, built in memory without MLflow (a sweep scores each epoch with it)
    in_memory: Callable[[dict[str, Any], DatasetVersion | None], Any]


def _one_column(column: str, inputs: list[Any]) -> pd.DataFrame:
    return pd.DataFrame({column: inputs})


def _log_image(training_state: dict[str, Any], dataset: DatasetVersion | None) -> tuple[Any, int]:
    from cl_core.models.spec import ImageModelSpec
    from flows.mlflow_edge.registry import log_image_embedder

    return log_image_embedder(training_state), ImageModelSpec.from_dict(training_state["model_meta"]).embedding_dim


def _log_text(training_state: dict[str, Any], dataset: DatasetVersion | None) -> tuple[Any, int]:
    from flows.mlflow_edge.registry import log_text_embedder

    return log_text_embedder(training_state)


def _log_recommender(training_state: dict[str, Any], dataset: DatasetVersion | None) -> tuple[Any, int]:
    from flows.mlflow_edge.recommender_registry import log_recommender

    if dataset is None:
        raise ValueError("a recommender is logged with the dataset version it was trained on")
    return log_recommender(training_state, dataset)


def _image_model(training_state: dict[str, Any], dataset: DatasetVersion | None) -> Any:
    from flows.mlflow_edge.registry import image_model

    return image_model(training_state)


def _text_model(training_state: dict[str, Any], dataset: DatasetVersion | None) -> Any:
    from flows.mlflow_edge.registry import text_model

    return text_model(training_state)


def _recommender_model(training_state: dict[str, Any], dataset: DatasetVersion | None) -> Any:
    from flows.mlflow_edge.recommender_registry import recommender_model

    if dataset is None:
        raise ValueError("a recommender is built with the dataset version it was trained on")
    return recommender_model(training_state, dataset)


def _image_inputs(wrapped: Any, pyfunc: Pyfunc) -> dict[str, Any]:
    """The views the protocol embeds, and the backbone before fine-tuning (None: from scratch)."""
    base = wrapped.pretrained()
    return {
        "embed_views": wrapped.embed_tensor, "image_size": wrapped.image_size, "channels": wrapped.channels,
        "batch_size": wrapped.batch_size,
        "pretrained": None if base is None else (lambda inputs: base.predict(None, pyfunc.frame(inputs))),
    }


def _text_inputs(wrapped: Any, pyfunc: Pyfunc) -> dict[str, Any]:
    """The encoder the model was fine-tuned from, as texts -> (N, D); None when it has none."""
    if not wrapped.base_encoder:
        return {"pretrained": None}
    from cl_core.models.text import TextEmbedder, TextTokenizer, embed_texts, resolve_text_encoder

    base_path = resolve_text_encoder(wrapped.base_encoder)
    base = TextEmbedder.from_pretrained(base_path).eval()
    tokenizer = TextTokenizer(base_path, max_length=wrapped.max_length)
    return {"pretrained": lambda texts: embed_texts(base, tokenizer, texts)}


_HERE = Path(__file__).parent

PYFUNCS: MappingProxyType[str, Pyfunc] = MappingProxyType({
    IMAGE.name: Pyfunc(
        file=_HERE / "image_pyfunc.py", log=_log_image, frame=partial(_one_column, IMAGE.input_column),
        dimension=lambda wrapped: wrapped.embedder.embedding_dim, protocol_inputs=_image_inputs,
        in_memory=_image_model,
    ),
    TEXT.name: Pyfunc(
        file=_HERE / "text_pyfunc.py", log=_log_text, frame=partial(_one_column, TEXT.input_column),
        dimension=lambda wrapped: wrapped.embedder.embedding_dim, protocol_inputs=_text_inputs,
        in_memory=_text_model,
    ),
    # Each input is a user's or an item's row as a dict (`cl_core.embeddings.interaction_rows`):
    # one DataFrame row each.
    INTERACTIONS.name: Pyfunc(
        file=_HERE / "recommender_pyfunc.py", log=_log_recommender, frame=pd.DataFrame,
        dimension=lambda wrapped: wrapped.embedding_dim, protocol_inputs=lambda wrapped, pyfunc: {},
        in_memory=_recommender_model,
    ),
})


def pyfunc(kind: str) -> Pyfunc:
    """The entry of modality `kind`; a clear error for a kind without one."""
    try:
        return PYFUNCS[kind]
    except KeyError:
        raise ValueError(f"no pyfunc for modality {kind!r} (known: {', '.join(PYFUNCS)})") from None


def kind_of(loaded: Any) -> str:
    """The modality of a loaded pyfunc: the one its Python model declares (`modality`), else the
    record whose input column its signature names (the image and text pyfuncs' one input), else
    that column's name as it is (a model of no known modality)."""
    declared = getattr(loaded.unwrap_python_model(), "modality", None)
    if declared:
        return declared
    column = loaded.metadata.get_input_schema().input_names()[0]
    return next((name for name, record in MODALITIES.items() if record.input_column == column), column)


def python_model_embedder(python_model: Any, kind: str) -> Embed:
    """`embedder` for a Python model that was not loaded through MLflow (`Pyfunc.in_memory`)."""
    frame = pyfunc(kind).frame
    return lambda inputs: np.asarray(python_model.predict(None, frame(inputs)), dtype=np.float32)


def embedder(loaded: Any, kind: str) -> Embed:
    """Inputs of modality `kind` -> (N, D) float32 through a loaded pyfunc's `predict`, exactly as
    a registry user calls it."""
    frame = pyfunc(kind).frame
    return lambda inputs: np.asarray(loaded.predict(frame(inputs)), dtype=np.float32)
