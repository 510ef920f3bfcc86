"""Pairwise contrastive loss (Hadsell, Chopra & LeCun 2006, "Dimensionality Reduction by
Learning an Invariant Mapping")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cl_core.losses.distances import check_distance, paired_distance


class PairwiseContrastiveLoss(nn.Module):
    """Pull similar pairs together, push dissimilar pairs at least `margin` apart.

    For pairs (x1_i, x2_i) at distance d_i:
        similar:     l(i) = d_i^2
        dissimilar:  l(i) = max(0, margin - d_i)^2
    and the loss is the mean of l over the B pairs.

    Factor convention: Hadsell et al. write (1/2) d^2 and (1/2) max(0, m - d)^2. The 1/2 is
    dropped here (as in most libraries): it scales the loss and its gradients by a constant 2,
    which a learning rate absorbs, and keeps l(i) equal to the square of the hinge terms of
    pytorch-metric-learning's `ContrastiveLoss(pos_margin=0, neg_margin=margin)`.

    Distances: "euclidean" (the paper's, on the raw embeddings) or "cosine" (1 - cos). For a
    similar pair the squared euclidean distance is computed as a sum of squares, so its
    gradient stays finite at d = 0.
    """

    def __init__(self, margin: float = 1.0, distance: str = "euclidean") -> None:
        super().__init__()
        if not margin > 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        check_distance(distance)
        self.margin = margin
        self.distance = distance

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, similar: torch.Tensor) -> torch.Tensor:
        """x1, x2: (B, D) the two sides of B pairs; similar: (B,) bool or 0/1, 1 for a similar
        pair. Returns a scalar."""
        if x1.shape != x2.shape or x1.dim() != 2:
            raise ValueError(f"x1 and x2 must both be (B, D); got {tuple(x1.shape)} and {tuple(x2.shape)}")
        if similar.shape != x1.shape[:1]:
            raise ValueError(f"similar must have shape ({x1.shape[0]},), got {tuple(similar.shape)}")
        similar = similar.to(torch.bool)
        distance = paired_distance(x1, x2, self.distance)  # (B,)
        if self.distance == "euclidean":
            squared = (x1 - x2).pow(2).sum(dim=-1)  # (B,)
        else:
            squared = distance.pow(2)
        dissimilar = F.relu(self.margin - distance).pow(2)  # (B,)
        return torch.where(similar, squared, dissimilar).mean()
