"""The whole run config: one field per section, the text and interactions defaults filled in for
what a config leaves out, and the checks that span sections (the loss fits the modality, the
ingest engine fits the data, the image size fits the backbone, image-only model fields stay off
text and interactions)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator

from cl_core.config.base import _Section
from cl_core.config.model import ModelConfig
from cl_core.config.sections import (
    DataConfig,
    EvalConfig,
    ExportConfig,
    IngestConfig,
    LossConfig,
    RegistryConfig,
    TrainConfig,
    ViewsConfig,
)
from cl_core.losses.objectives import get_objective, objective_names
from cl_core.models.backbones import get_backbone

# What text data trains with when the config leaves a field out (PipelineConfig._modality_defaults).
TEXT_DEFAULTS = {
    "loss": {"name": "mnrl", "temperature": 0.05},  # scale 20
    "train": {"epochs": 1, "batch_size": 32, "lr": 2e-5, "weight_decay": 0.01, "warmup_epochs": 0},
}
# Interactions: the two towers train from scratch on (user, item) rows, many small steps per epoch.
INTERACTIONS_DEFAULTS = {
    "loss": {"name": "sampled_softmax", "temperature": 0.05},
    "train": {"epochs": 10, "batch_size": 512, "lr": 2e-3, "weight_decay": 0.0, "warmup_epochs": 0},
}
MODALITY_DEFAULTS = {"text": TEXT_DEFAULTS, "interactions": INTERACTIONS_DEFAULTS}


class PipelineConfig(_Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    views: ViewsConfig = ViewsConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    ingest: IngestConfig = IngestConfig()
    export: ExportConfig = ExportConfig()
    registry: RegistryConfig = RegistryConfig()

    @model_validator(mode="before")
    @classmethod
    def _modality_defaults(cls, raw: Any) -> Any:
        # The defaults above are for training an image encoder from scratch (ntxent, lr 2e-3,
        # 30 epochs); they would wreck a pretrained sentence encoder. Text data gets the usual
        # fine-tuning settings (sentence-transformers') for every field the config leaves out,
        # interactions the two-tower recommender's (MODALITY_DEFAULTS).
        if not isinstance(raw, dict):
            return raw
        data = raw.get("data")
        modality = data.get("modality") if isinstance(data, dict) else getattr(data, "modality", None)
        if modality not in MODALITY_DEFAULTS:
            return raw
        filled = dict(raw)
        for section, defaults in MODALITY_DEFAULTS[modality].items():
            given = raw.get(section)
            if isinstance(given, BaseModel):
                continue  # a validated section: its values were chosen already
            filled[section] = {**defaults, **(given or {})}
        return filled

    @model_validator(mode="after")
    def _loss_fits_the_modality(self) -> PipelineConfig:
        objective = get_objective(self.loss.name)
        if self.data.modality not in objective.modalities:
            allowed = objective_names(self.data.modality)
            raise ValueError(f"loss.name {self.loss.name!r} does not train {self.data.modality} data; use one of {allowed}")
        objective.settle(self.loss.options, self.data.modality)
        if self.data.modality == "image" and self.model.finetuned_weight != 1.0:
            raise ValueError("model.finetuned_weight applies to pretrained text encoders, not to image backbones")
        return self

    @model_validator(mode="after")
    def _engine_fits_the_data(self) -> PipelineConfig:
        if self.ingest.engine == "ray" and self.data.modality == "interactions":
            raise ValueError("ingest.engine 'ray' ingests images and text; interactions are split by time over all "
                             "their rows at once: use ingest.engine local")
        if self.ingest.engine == "ray" and self.data.limit is not None:
            raise ValueError("data.limit keeps the first N good records in file order, which only ingest.engine "
                             "local reads; drop data.limit or use ingest.engine local")
        return self

    @model_validator(mode="after")
    def _image_size_fits_the_backbone(self) -> PipelineConfig:
        if self.data.modality != "image":
            image_only = {"backbone": "resnet", "pretrained": None, "freeze_stages": 0, "freeze_bn": False}
            given = [f"model.{key}" for key, default in image_only.items() if getattr(self.model, key) != default]
            trains = "text fine-tunes model.text_encoder" if self.data.modality == "text" else "the two towers train from scratch"
            if given:
                raise ValueError(f"{', '.join(given)} applies to image backbones; {trains}")
            if self.data.modality == "interactions" and self.train.backbone_lr_mult != 1.0:
                raise ValueError("train.backbone_lr_mult applies to a pretrained part; the two towers train from scratch")
            return self
        backbone = get_backbone(self.model.backbone)
        if self.data.image_size < backbone.min_image_size:
            raise ValueError(
                f"data.image_size {self.data.image_size} is below the minimum {backbone.min_image_size} of backbone "
                f"{backbone.name!r} (model.backbone)"
            )
        return self

    @property
    def model_name(self) -> str:
        """The registered model's name: registry.model_name, else the dataset and what was
        trained on it (images: the objective, e.g. digits-moco; text: "text", whichever of the
        text objectives fine-tuned the encoder)."""
        suffix = "text" if self.data.modality == "text" else self.loss.name
        return self.registry.model_name or f"{self.data.name}-{suffix}"

    @property
    def experiment_name(self) -> str:
        return self.registry.experiment or self.model_name
