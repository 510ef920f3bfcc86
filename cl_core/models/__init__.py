"""Image and text encoders and projection heads, built from a `ModelConfig`.

The text side (`cl_core.models.text`) imports transformers only when a model or tokenizer is
built, so importing this package stays as light as torch."""

from __future__ import annotations

from cl_core.models.projection import ProjectionHead
from cl_core.models.resnet import BasicBlock, ResNetEncoder
from cl_core.models.simclr import ImageEmbedder, SimCLRModel, normalize_pixels
from cl_core.models.text import TextEmbedder, TextTokenizer, embed_texts, mean_pool, resolve_text_encoder


def build_embedder(channels: int, image_size: int, depths, widths, stem_stride: int = 1) -> ImageEmbedder:
    encoder = ResNetEncoder(channels, depths, widths, stem_stride)
    return ImageEmbedder(encoder, image_size=image_size, channels=channels)


def build_simclr(
    channels: int, image_size: int, depths, widths, proj_hidden: int, proj_dim: int, stem_stride: int = 1
) -> SimCLRModel:
    embedder = build_embedder(channels, image_size, depths, widths, stem_stride)
    return SimCLRModel(embedder, ProjectionHead(embedder.embedding_dim, proj_hidden, proj_dim))


__all__ = [
    "BasicBlock",
    "ImageEmbedder",
    "ProjectionHead",
    "ResNetEncoder",
    "SimCLRModel",
    "TextEmbedder",
    "TextTokenizer",
    "build_embedder",
    "build_simclr",
    "embed_texts",
    "mean_pool",
    "normalize_pixels",
    "resolve_text_encoder",
]
