"""MLflow model logging, registration, aliases and loading; each modality's pyfunc is an entry of
`flows.mlflow_edge.pyfuncs.PYFUNCS`.

What is logged is rebuilt from the checkpoint's "model_meta" (`cl_core.models.spec`); the pyfunc's
model config is the part of it the pyfunc needs to load the model again."""

from __future__ import annotations

import io
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow import MlflowClient
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec
from PIL import Image
from safetensors.torch import save_file

import cl_core
from cl_core.modalities.image import IMAGE
from cl_core.modalities.text import TEXT
from cl_core.models.backbones import get_backbone
from cl_core.models.spec import ImageModelSpec, TextModelSpec, model_spec_from_dict
from flows.mlflow_edge.pyfuncs import PYFUNCS
from flows.mlflow_edge.registry_errors import is_not_found

CHALLENGER = "challenger"
CHAMPION = "champion"
IMAGE_PYFUNC_FILE = PYFUNCS[IMAGE.name].file
TEXT_PYFUNC_FILE = PYFUNCS[TEXT.name].file
_REF = re.compile(r"^(?P<name>[^@/]+)(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>\d+))?$")


@dataclass(frozen=True)
class ModelRef:
    """A registered model named as NAME, NAME@ALIAS or NAME/VERSION."""

    name: str
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        match = _REF.match(text.strip())
        if not match:
            raise ValueError(f"model reference {text!r} must be NAME, NAME@ALIAS or NAME/VERSION")
        return cls(match["name"], match["alias"], match["version"])

    def resolve(self, client: MlflowClient) -> Any:
        """The ModelVersion this reference points at (bare NAME: the newest version).

        Raises LookupError when the registry says the model, version or alias does not exist;
        any other registry error (a tracking server's 5xx, a permission error) is raised as is,
        never reported as a missing model. The name goes to the registry as a name, never inside
        a search filter, so a quote in it cannot change what is looked up."""
        try:
            if self.alias:
                return client.get_model_version_by_alias(self.name, self.alias)
            if self.version:
                return client.get_model_version(self.name, self.version)
            # The newest of the latest version in each stage is the newest version.
            versions = client.get_registered_model(self.name).latest_versions or []
        except mlflow.exceptions.MlflowException as error:
            if not is_not_found(error):
                raise
            if not (self.alias or self.version):  # as a search by name would say
                raise LookupError(f"registered model {self.name!r} has no versions") from None
            raise LookupError(f"model {self} not found in the registry at {mlflow.get_tracking_uri()}: {error.message}") from None
        if not versions:
            raise LookupError(f"registered model {self.name!r} has no versions")
        return max(versions, key=lambda v: int(v.version))

    def __str__(self) -> str:
        return self.name + (f"@{self.alias}" if self.alias else f"/{self.version}" if self.version else "")


def alias_target(client: MlflowClient, model_ref: str) -> str | None:
    """The version NAME@ALIAS names now, or None when the alias is not set. Any other registry
    error (unreachable server, permission) is raised: "not set" must be a fact, not a guess."""
    ref = ModelRef.parse(model_ref)
    try:
        return str(client.get_model_version_by_alias(ref.name, ref.alias).version)
    except mlflow.exceptions.MlflowException as error:
        if is_not_found(error):
            return None
        raise


def embedder_state(training_state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The encoder weights (without the projection head) from a training checkpoint."""
    prefix = "embedder."
    return {key[len(prefix):]: value.contiguous() for key, value in training_state["model"].items() if key.startswith(prefix)}


def _example_images(channels: int, size: int) -> pd.DataFrame:
    """A one-row input example (a black PNG) so the logged model documents its input."""
    buffer = io.BytesIO()
    Image.new("L" if channels == 1 else "RGB", (size, size)).save(buffer, format="PNG")
    return PYFUNCS[IMAGE.name].frame([buffer.getvalue()])


def log_image_embedder(training_state: dict[str, Any], name: str = "model") -> Any:
    """Log the image encoder of `training_state` into the active run as a pyfunc; returns ModelInfo."""
    spec = ImageModelSpec.from_dict(training_state["model_meta"])
    weights = embedder_state(training_state)
    signature = ModelSignature(
        inputs=Schema([ColSpec("binary", IMAGE.input_column)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, spec.embedding_dim))]),
    )
    with tempfile.TemporaryDirectory() as folder:
        weights_file = Path(folder) / "embedder.safetensors"
        save_file(weights, str(weights_file))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(IMAGE_PYFUNC_FILE),
            artifacts={"weights": str(weights_file)},
            model_config=spec.pyfunc_config(),
            code_paths=[str(Path(cl_core.__file__).parent)],
            signature=signature,
            input_example=_example_images(spec.channels, spec.image_size),
            pip_requirements=[
                f"torch=={torch.__version__.split('+')[0]}",
                "numpy",
                "pillow",
                "safetensors",
                "kornia",
                "pyarrow",
                "scikit-learn",
                "pydantic",
                "pyyaml",
                *(f"{package}=={_version(package)}" for package in get_backbone(spec.backbone).requirements),
            ],
        )


def image_model(training_state: dict[str, Any]) -> Any:
    """The image pyfunc's Python model of a training checkpoint, in memory: what the registry
    would load, without logging it (a sweep's per-epoch validation)."""
    from flows.mlflow_edge.image_pyfunc import ImageEmbeddingModel

    spec = ImageModelSpec.from_dict(training_state["model_meta"])
    return ImageEmbeddingModel().configure(spec.pyfunc_config(), embedder_state(training_state))


def _text_embedder(training_state: dict[str, Any]) -> tuple[TextModelSpec, Any]:
    """(spec, the sentence encoder to log). With a `finetuned_weight` below 1 the encoder is that
    blend of the fine-tuned and the pretrained weights (WiSE-FT); the projection head, which only
    fine-tuning trained, is kept."""
    from cl_core.models.merge import interpolate_weights

    spec = TextModelSpec.from_dict(training_state["model_meta"])
    embedder = spec.build()
    weights = training_state["model"]
    if spec.finetuned_weight < 1.0:
        weights = interpolate_weights(embedder.state_dict(), weights, spec.finetuned_weight, prefix="encoder.")
    embedder.load_state_dict(weights)
    return spec, embedder


def text_model(training_state: dict[str, Any]) -> Any:
    """The text pyfunc's Python model of a training checkpoint, in memory (`image_model`'s twin):
    the encoder goes through the same saved folder the logged model carries."""
    from flows.mlflow_edge.text_pyfunc import TextEmbeddingModel

    spec, embedder = _text_embedder(training_state)
    with tempfile.TemporaryDirectory() as folder:
        embedder.save(folder, tokenizer=spec.build_tokenizer())
        return TextEmbeddingModel().configure(spec.pyfunc_config(), folder)


def log_text_embedder(training_state: dict[str, Any], name: str = "model") -> tuple[Any, int]:
    """Log the fine-tuned sentence encoder of `training_state` (weights, tokenizer, projection)
    into the active run as a pyfunc; returns (ModelInfo, embedding dimension); `_text_embedder`
    says which weights."""
    spec, embedder = _text_embedder(training_state)
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", TEXT.input_column)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, embedder.embedding_dim))]),
    )
    with tempfile.TemporaryDirectory() as folder:
        embedder.save(folder, tokenizer=spec.build_tokenizer())
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(TEXT_PYFUNC_FILE),
            artifacts={"encoder": folder},
            model_config=spec.pyfunc_config(),
            code_paths=[str(Path(cl_core.__file__).parent)],
            signature=signature,
            input_example=PYFUNCS[TEXT.name].frame(["A man is playing a guitar."]),
            pip_requirements=[
                f"torch=={torch.__version__.split('+')[0]}",
                f"transformers=={_version('transformers')}",
                f"tokenizers=={_version('tokenizers')}",
                "numpy", "safetensors", "pyarrow", "scikit-learn", "scipy", "pydantic", "pyyaml",
            ],
        )
    return info, embedder.embedding_dim


def log_embedder(training_state: dict[str, Any], dataset: Any = None) -> tuple[Any, int]:
    """Log the model of a training checkpoint as its modality's pyfunc (`pyfuncs.PYFUNCS`: image,
    text or, with the `DatasetVersion` it was trained on, a recommender); returns (ModelInfo,
    dimension)."""
    from flows.mlflow_edge.pyfuncs import pyfunc

    spec = model_spec_from_dict(training_state["model_meta"])
    return pyfunc(spec.modality).log(training_state, dataset)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def register(model_uri: str, model_name: str, run_id: str, tags: dict[str, str] | None = None,
             description: str | None = None) -> Any:
    """Register `model_uri` as a new version of `model_name` and point `challenger` at it."""
    version = mlflow.register_model(model_uri, model_name, tags=tags)
    client = MlflowClient()
    if description:
        client.update_model_version(model_name, version.version, description=description)
    client.set_registered_model_alias(model_name, CHALLENGER, version.version)
    client.set_model_version_tag(model_name, version.version, "source_run_id", run_id)
    return version


def load_model(ref: ModelRef) -> tuple[Any, Any]:
    """(pyfunc model, ModelVersion) for a reference, loaded from the registry."""
    version = ref.resolve(MlflowClient())
    model = mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")
    return model, version


def append_to_description(model_name: str, version: str, text: str) -> None:
    """Add a paragraph to a model version's description (the registry UI shows it)."""
    client = MlflowClient()
    current = client.get_model_version(model_name, version).description or ""
    client.update_model_version(model_name, version, description=f"{current}\n\n{text}".strip())


def aliases_of(model_name: str, version: str) -> list[str]:
    return sorted(MlflowClient().get_model_version(model_name, version).aliases)
