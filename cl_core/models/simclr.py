"""Encoder + projection head, and the input normalisation that travels with the weights."""

from __future__ import annotations

import torch
from torch import nn

from cl_core.models.projection import ProjectionHead
from cl_core.models.resnet import ResNetEncoder


class ImageEmbedder(nn.Module):
    """uint8 or [0, 1] images (B, C, H, W) -> encoder features (B, D).

    This is what gets registered and exported: the embedding is the encoder output (before the
    projection head), which transfers better than the projection (SimCLR, section 4.2).
    """

    def __init__(self, encoder: ResNetEncoder, image_size: int, channels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.image_size = image_size
        self.channels = channels

    @property
    def embedding_dim(self) -> int:
        return self.encoder.feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        return self.encoder(normalize_pixels(images))


class SimCLRModel(nn.Module):
    """Embedder plus projection head; `forward` returns the projections the loss compares."""

    def __init__(self, embedder: ImageEmbedder, head: ProjectionHead) -> None:
        super().__init__()
        self.embedder = embedder
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedder(images))  # (B, proj_dim)


def normalize_pixels(images: torch.Tensor) -> torch.Tensor:
    """Map [0, 1] pixels to roughly zero mean, unit variance; fixed so export needs no stats."""
    return (images - 0.5) / 0.25
