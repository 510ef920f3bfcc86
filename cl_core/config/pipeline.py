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
from cl_core.losses.objectives import EMBEDDINGS_ONLY_FORMS, EMBEDDINGS_ONLY_FORMS_NOT, OBJECTIVES, get_objective, objective_names
from cl_core.modalities import MODALITIES, modality
from cl_core.modalities.interactions import INTERACTIONS
from cl_core.modalities.text import TEXT
from cl_core.models.backbones import get_backbone

# What each kind of data trains with when the config leaves a field out (its record's `defaults`;
# PipelineConfig._modality_defaults).
MODALITY_DEFAULTS = {name: record.defaults for name, record in MODALITIES.items() if record.defaults}
TEXT_DEFAULTS = TEXT.defaults
INTERACTIONS_DEFAULTS = INTERACTIONS.defaults
# What ingest.engine 'ray' ingests, in its refusal of the others.
_RAY_INGESTS = " and ".join(record.noun for record in MODALITIES.values() if record.local_ingest_only is None)


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
        # The sections' defaults are for training an image encoder from scratch (ntxent, lr 2e-3,
        # 30 epochs); they would wreck a pretrained sentence encoder. Other data gets its
        # record's defaults for every field the config leaves out (MODALITY_DEFAULTS).
        if not isinstance(raw, dict):
            return raw
        data = raw.get("data")
        kind = data.get("modality") if isinstance(data, dict) else getattr(data, "modality", None)
        if kind not in MODALITY_DEFAULTS:
            return raw
        filled = dict(raw)
        for section, defaults in MODALITY_DEFAULTS[kind].items():
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
        form = objective.form(self.data.modality)
        if self.train.grad_cache_chunk is not None and form not in EMBEDDINGS_ONLY_FORMS:
            chunkable = [o.name for o in OBJECTIVES.values()
                         if o.trains.get(self.data.modality) in EMBEDDINGS_ONLY_FORMS]
            raise ValueError(
                f"train.grad_cache_chunk does not apply to loss {self.loss.name!r} on {self.data.modality} data: "
                f"its {form} loss reads more than the batch's embeddings ({EMBEDDINGS_ONLY_FORMS_NOT[form]}); "
                + (f"use one of {chunkable} or drop the key" if chunkable else "drop the key"))
        if modality(self.data.modality).image_backbone and self.model.finetuned_weight != 1.0:
            raise ValueError("model.finetuned_weight applies to pretrained text encoders, not to image backbones")
        return self

    @model_validator(mode="after")
    def _engine_fits_the_data(self) -> PipelineConfig:
        why_local = modality(self.data.modality).local_ingest_only
        if self.ingest.engine == "ray" and why_local is not None:
            raise ValueError(f"ingest.engine 'ray' ingests {_RAY_INGESTS}; {why_local}: use ingest.engine local")
        if self.ingest.engine == "ray" and self.data.limit is not None:
            raise ValueError("data.limit keeps the first N good records in file order, which only ingest.engine "
                             "local reads; drop data.limit or use ingest.engine local")
        return self

    @model_validator(mode="after")
    def _image_size_fits_the_backbone(self) -> PipelineConfig:
        record = modality(self.data.modality)
        if not record.image_backbone:
            image_only = {"backbone": "resnet", "pretrained": None, "freeze_stages": 0, "freeze_bn": False}
            given = [f"model.{key}" for key, default in image_only.items() if getattr(self.model, key) != default]
            if given:
                raise ValueError(f"{', '.join(given)} applies to image backbones; {record.trains}")
            if not record.backbone_lr_mult and self.train.backbone_lr_mult != 1.0:
                raise ValueError(f"train.backbone_lr_mult applies to a pretrained part; {record.trains}")
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
        suffix = modality(self.data.modality).model_name_suffix or self.loss.name
        return self.registry.model_name or f"{self.data.name}-{suffix}"

    @property
    def experiment_name(self) -> str:
        return self.registry.experiment or self.model_name
