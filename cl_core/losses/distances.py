"""The two distances the margin losses (triplet, pairwise contrastive) are defined over."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cl_core.losses.margin_choices import DISTANCES


def check_distance(distance: str) -> None:
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


def paired_distance(x: torch.Tensor, y: torch.Tensor, distance: str) -> torch.Tensor:
    """Row-wise distance between x (B, D) and y (B, D) -> (B,).

    cosine: 1 - cos(x, y), in [0, 2], invariant to the scale of each row.
    euclidean: ||x - y||_2 on the raw embeddings (normalise them first for FaceNet's setting).
    """
    if distance == "cosine":
        return 1.0 - (F.normalize(x, dim=-1) * F.normalize(y, dim=-1)).sum(dim=-1)
    # vector_norm's backward is defined as 0 at a zero difference (pairwise_distance would add eps).
    return torch.linalg.vector_norm(x - y, dim=-1)


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, distance: str) -> torch.Tensor:
    """All-pairs distance between x (N, D) and y (M, D) -> (N, M), same definitions."""
    if distance == "cosine":
        return 1.0 - F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T
    # The direct kernel rather than the |x|^2 + |y|^2 - 2xy expansion: exact for near duplicates.
    return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
