"""Encoder + projection head, and the input normalisation that travels with the weights."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cl_core.models.backbones import SCRATCH_MEAN, SCRATCH_STD
from cl_core.models.projection import ProjectionHead
from cl_core.models.resnet import ResNetEncoder


class ImageEmbedder(nn.Module):
    """uint8 or [0, 1] images (B, C, H, W) -> encoder features (B, D).

    This is what gets registered and exported: the embedding is the encoder output (before the
    projection head), which transfers better than the projection (SimCLR, section 4.2).

    Pixels are normalised with `pixel_mean` / `pixel_std` (one value per channel, or one for all;
    the default is the from-scratch ResNet's fixed (x - 0.5) / 0.25), so export needs no
    statistics. A 1-channel batch given to a 3-channel embedder is replicated to RGB.

    Fine-tuning controls (`cl_core.models.spec.ImageModelSpec.build_training_model`):
    `freeze_stages` N > 0 freezes the encoder's stem and its first N stages (no gradient, and
    their BatchNorm layers keep their running statistics: they stay in eval mode whatever
    `train()` says); `freeze_bn` keeps every BatchNorm layer of the encoder in eval mode (running
    statistics frozen; its affine weights still learn unless frozen with their stage).
    """

    def __init__(
        self,
        encoder: nn.Module,
        image_size: int,
        channels: int,
        pixel_mean: Sequence[float] = SCRATCH_MEAN,
        pixel_std: Sequence[float] = SCRATCH_STD,
        freeze_stages: int = 0,
        freeze_bn: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.image_size = image_size
        self.channels = channels
        # Not persistent: the spec carries the values, and registered weights stay the encoder's.
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        stages = len(encoder.stage_modules()) - 1
        if not 0 <= freeze_stages <= stages:
            raise ValueError(f"freeze_stages must be in [0, {stages}] for this encoder, got {freeze_stages}")
        self.freeze_stages, self.freeze_bn = freeze_stages, freeze_bn
        for module in self.frozen_modules():
            module.requires_grad_(False)
        self.train()

    @property
    def embedding_dim(self) -> int:
        return self.encoder.feature_dim

    def frozen_modules(self) -> list[nn.Module]:
        """The stem and the first `freeze_stages` stages; none when it is 0."""
        return self.encoder.stage_modules()[: self.freeze_stages + 1] if self.freeze_stages else []

    def train(self, mode: bool = True) -> ImageEmbedder:
        super().train(mode)
        if mode:
            # Frozen parts keep inference behaviour (BatchNorm running statistics, no stochastic depth).
            for module in self.frozen_modules():
                module.eval()
            if self.freeze_bn:
                for module in self.encoder.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images (B, C, H, W) -> the encoder's input scale."""
        return (images - self.pixel_mean) / self.pixel_std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        if images.shape[1] == 1 and self.channels == 3:
            images = images.expand(-1, 3, -1, -1)  # grayscale replicated for an RGB backbone
        return self.encoder(self.normalize(images))


class SimCLRModel(nn.Module):
    """Embedder plus projection head; `forward` returns the projections the loss compares."""

    def __init__(self, embedder: ImageEmbedder, head: ProjectionHead) -> None:
        super().__init__()
        self.embedder = embedder
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedder(images))  # (B, proj_dim)


def normalize_pixels(images: torch.Tensor) -> torch.Tensor:
    """Map [0, 1] pixels to roughly zero mean, unit variance; the from-scratch ResNet's scaling."""
    return (images - SCRATCH_MEAN[0]) / SCRATCH_STD[0]


def build_embedder(channels: int, image_size: int, depths, widths, stem_stride: int = 1) -> ImageEmbedder:
    """A from-scratch ResNet embedder."""
    encoder = ResNetEncoder(channels, depths, widths, stem_stride)
    return ImageEmbedder(encoder, image_size=image_size, channels=channels)


def build_simclr(
    channels: int, image_size: int, depths, widths, proj_hidden: int, proj_dim: int, stem_stride: int = 1
) -> SimCLRModel:
    """A from-scratch ResNet embedder with its projection head."""
    embedder = build_embedder(channels, image_size, depths, widths, stem_stride)
    return SimCLRModel(embedder, ProjectionHead(embedder.embedding_dim, proj_hidden, proj_dim))
