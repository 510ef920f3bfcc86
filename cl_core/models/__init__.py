"""Image encoders and projection heads, built from a `ModelConfig`."""

from __future__ import annotations

from cl_core.models.projection import ProjectionHead
from cl_core.models.resnet import BasicBlock, ResNetEncoder
from cl_core.models.simclr import ImageEmbedder, SimCLRModel, normalize_pixels


def build_embedder(channels: int, image_size: int, depths, widths) -> ImageEmbedder:
    return ImageEmbedder(ResNetEncoder(channels, depths, widths), image_size=image_size, channels=channels)


def build_simclr(channels: int, image_size: int, depths, widths, proj_hidden: int, proj_dim: int) -> SimCLRModel:
    embedder = build_embedder(channels, image_size, depths, widths)
    return SimCLRModel(embedder, ProjectionHead(embedder.embedding_dim, proj_hidden, proj_dim))


__all__ = [
    "BasicBlock",
    "ImageEmbedder",
    "ProjectionHead",
    "ResNetEncoder",
    "SimCLRModel",
    "build_embedder",
    "build_simclr",
    "normalize_pixels",
]
