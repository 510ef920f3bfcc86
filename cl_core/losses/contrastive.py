"""Pairwise contrastive loss (Hadsell, Chopra & LeCun 2006, "Dimensionality Reduction by
Learning an Invariant Mapping")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cl_core.losses.distances import check_distance, paired_distance, pairwise_distance
from cl_core.losses.global_batch import two_view_batch


def _check_margin(margin: float) -> None:
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")


def dissimilar_term(distance: torch.Tensor, margin: float) -> torch.Tensor:
    """max(0, margin - d)^2, elementwise: a dissimilar pair stops contributing at d >= margin."""
    return F.relu(margin - distance).pow(2)


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
        _check_margin(margin)
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
        dissimilar = dissimilar_term(distance, self.margin)  # (B,)
        return torch.where(similar, squared, dissimilar).mean()


class TwoViewContrastiveLoss(nn.Module):
    """Hadsell et al.'s pairwise loss over all cross-view pairs (z1_i, z2_j) of B samples.

    Similar pairs: (z1_i, z2_i), or with `use_labels=True` every pair of the same class.
    Dissimilar pairs: j != i, or another class when labels are given (so with labels but not
    `use_labels`, same-class pairs j != i are dropped). There are B similar pairs for B*(B-1)
    dissimilar ones, so the loss is balanced: the mean of d^2 over the similar pairs plus the
    mean of max(0, margin - d)^2 over the dissimilar pairs (each term as
    `PairwiseContrastiveLoss` defines it). Cosine distance (1 - cos) is scale invariant, which
    suits projections that are not L2-normalised; a margin of 0.5 stays reachable for every pair
    of a large batch in D dimensions, which a margin of 1 (all pairs orthogonal or worse) is not.

    With `gather_distributed=True` and an initialised process group, the pairs are this
    worker's z1 against every worker's z2 (gathered with gradients), and each mean is normalised
    by its global count (one all_reduce), so the mean of the workers' values is the
    single-process loss on the concatenated batch. Every rank must pass the same B.
    """

    def __init__(
        self, margin: float = 0.5, distance: str = "cosine", use_labels: bool = False, gather_distributed: bool = True
    ) -> None:
        super().__init__()
        _check_margin(margin)
        check_distance(distance)
        self.margin = margin
        self.distance = distance
        self.use_labels = use_labels
        self.gather_distributed = gather_distributed

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, *, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z1, z2: (B, D) the two views of B samples; labels: (B,) integers, or None (needed with
        `use_labels`). Returns a scalar."""
        if self.use_labels and labels is None:
            raise ValueError("contrastive with use_labels needs labels in forward(..., labels=...)")
        views = two_view_batch(z1, z2, labels, self.gather_distributed)
        # For euclidean, cdist's backward is 0 at d = 0, so d^2 keeps a finite gradient there.
        distances = pairwise_distance(z1, views.all_z2, self.distance)  # (B, WB)
        if self.use_labels:
            similar = views.label[:, None] == views.all_label[None, :]  # (B, WB)
        else:
            similar = views.sample[:, None] == views.all_sample[None, :]
        dissimilar = views.label[:, None] != views.all_label[None, :]  # another sample, or another class
        similar_sum = distances.pow(2).where(similar, 0.0).sum()
        dissimilar_sum = dissimilar_term(distances, self.margin).where(dissimilar, 0.0).sum()
        similar_count, dissimilar_count = views.global_count(torch.stack([similar.sum(), dissimilar.sum()]))
        return views.workers * (
            similar_sum / similar_count.clamp(min=1) + dissimilar_sum / dissimilar_count.clamp(min=1)
        )
