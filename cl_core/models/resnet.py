"""A small CIFAR-style ResNet encoder (He et al. 2016) sized by config.

The stem is a 3x3 convolution without max-pooling, as in SimCLR's CIFAR variant, so images as
small as 8x8 keep spatial resolution; `stem_stride=2` halves the resolution first, which cuts
the compute of every later layer by four (what makes 28x28 training affordable on a CPU).
`depths=(2, 2, 2, 2), widths=(64, 128, 256, 512)` is ResNet-18.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """Images (B, C, H, W) float -> features (B, widths[-1])."""

    def __init__(self, in_channels: int, depths: Sequence[int], widths: Sequence[int], stem_stride: int = 1) -> None:
        super().__init__()
        if len(depths) != len(widths) or not depths:
            raise ValueError(f"depths {list(depths)} and widths {list(widths)} must be non-empty and equally long")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages = []
        channels = widths[0]
        for index, (depth, width) in enumerate(zip(depths, widths, strict=True)):
            stride = 1 if index == 0 else 2
            blocks = [BasicBlock(channels, width, stride)]
            blocks += [BasicBlock(width, width, 1) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return torch.flatten(self.pool(x), 1)  # (B, feature_dim)

    def stage_modules(self) -> list[nn.Module]:
        """The stem, then each stage, in input order (what `freeze_stages` counts)."""
        return [self.stem, *self.stages]


def build_resnet_encoder(spec: Any, pretrained_weights: bool) -> ResNetEncoder:
    """The `resnet` backbone of an `ImageModelSpec` (cl_core/models/backbones.py); it has no
    pretrained weights, the table refuses `pretrained_weights` before this is called."""
    return ResNetEncoder(spec.channels, spec.depths, spec.widths, spec.stem_stride)
