"""Triplet margin loss (Schroff et al. 2015, "FaceNet"), with in-batch mining: batch-hard
(Hermans et al. 2017, "In Defense of the Triplet Loss for Person Re-Identification") and
semi-hard (FaceNet's)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cl_core.losses.distances import check_distance, paired_distance, pairwise_distance
from cl_core.losses.global_batch import two_view_batch
from cl_core.losses.margin_choices import MINING


class TripletMarginLoss(nn.Module):
    """max(0, d(a, p) - d(a, n) + margin), averaged over triplets.

    Without mining, `forward(anchor, positive, negative)` takes explicit triplets, each (B, D),
    and averages over all B of them (including those already satisfying the margin, as
    `torch.nn.TripletMarginLoss` does).

    With mining, `forward(embeddings, labels)` takes embeddings (B, D) and integer labels (B,)
    and builds triplets inside the batch; a positive is another sample with the same label, a
    negative one with a different label:
    - "batch_hard": for each anchor, its farthest positive and its closest negative; the mean
      is over anchors that have at least one positive and one negative.
    - "semi_hard": for each (anchor, positive) pair, the closest negative that is farther than
      the positive (d(a, n) > d(a, p)); when there is none, the farthest negative (the easiest
      of the hard ones), as in the reference `triplet_semihard_loss` of TensorFlow Addons. The
      mean is over positive pairs whose anchor has at least one negative.
    A batch with no valid anchor gives 0 (still connected to the graph).

    Distances: "cosine" (1 - cos, scale invariant) or "euclidean" (on the raw embeddings).
    Mining is within this worker's batch; nothing is gathered across workers (`TwoViewTripletLoss`
    mines two views against the global batch).
    """

    def __init__(self, margin: float = 0.2, distance: str = "cosine", mining: str | None = None) -> None:
        super().__init__()
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        check_distance(distance)
        if mining not in MINING:
            raise ValueError(f"mining must be one of {MINING}, got {mining!r}")
        self.margin = margin
        self.distance = distance
        self.mining = mining

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """(anchor, positive, negative), each (B, D), without mining; (embeddings (B, D),
        labels (B,)) with mining. Returns a scalar."""
        if self.mining is None:
            if len(inputs) != 3:
                raise ValueError("without mining, call forward(anchor, positive, negative)")
            return self._explicit(*inputs)
        if len(inputs) != 2:
            raise ValueError(f"with mining={self.mining!r}, call forward(embeddings, labels)")
        return self._mined(*inputs)

    def _explicit(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        if not (anchor.shape == positive.shape == negative.shape and anchor.dim() == 2):
            raise ValueError(
                "anchor, positive, negative must all be (B, D); got "
                f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}"
            )
        positive_distance = paired_distance(anchor, positive, self.distance)  # (B,)
        negative_distance = paired_distance(anchor, negative, self.distance)  # (B,)
        return F.relu(positive_distance - negative_distance + self.margin).mean()

    def _mined(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if embeddings.dim() != 2 or labels.shape != embeddings.shape[:1]:
            raise ValueError(
                f"embeddings must be (B, D) and labels (B,); got {tuple(embeddings.shape)} and {tuple(labels.shape)}"
            )
        distances = pairwise_distance(embeddings, embeddings, self.distance)  # (B, B)
        same = labels[:, None] == labels[None, :]  # (B, B)
        eye = torch.eye(embeddings.shape[0], dtype=torch.bool, device=embeddings.device)
        losses, valid = mine_triplets(distances, same & ~eye, ~same, self.margin, self.mining)
        # No valid anchor: every term is 0 and the clamp keeps a graph-connected 0.
        return losses.where(valid, 0.0).sum() / valid.sum().clamp(min=1)


class TwoViewTripletLoss(nn.Module):
    """The triplet loss on two views of B samples: `TripletMarginLoss`'s mining on the 2B
    embeddings [z1; z2], every view an anchor.

    Without labels, the two views of a sample are each other's only positive and every other
    sample's views are negatives. With labels (B,), views of the same class are never
    negatives; with `use_labels=True` they are also positives (any view), otherwise the
    positive stays the other view and same-class views are neither. Mining and distances as in
    `TripletMarginLoss`; the mean is over the (anchor, positive) terms with a negative.

    With `gather_distributed=True` and an initialised process group, each local anchor is mined
    against the global batch (every worker's views, gathered with gradients; local x global
    distances, nothing O(global^2)), and the sum is normalised by the global number of valid
    terms (one all_reduce of a count), so the mean of the workers' values is the single-process
    loss on the concatenated batch, even when valid anchors are uneven across workers. Every
    rank must pass the same B.
    """

    def __init__(
        self,
        margin: float = 0.2,
        distance: str = "cosine",
        mining: str = "semi_hard",
        use_labels: bool = False,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        check_distance(distance)
        if mining not in MINING[1:]:
            raise ValueError(f"mining must be one of {MINING[1:]}, got {mining!r}")
        self.margin = margin
        self.distance = distance
        self.mining = mining
        self.use_labels = use_labels
        self.gather_distributed = gather_distributed

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, *, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z1, z2: (B, D) the two views of B samples; labels: (B,) integers, or None (needed with
        `use_labels`). Returns a scalar."""
        if self.use_labels and labels is None:
            raise ValueError("triplet with use_labels needs labels in forward(..., labels=...)")
        views = two_view_batch(z1, z2, labels, self.gather_distributed)
        batch, global_batch = views.batch, views.global_batch
        anchors = torch.cat([z1, z2])  # (2B, D), view-major
        candidates = torch.cat([views.all_z1, views.all_z2])  # (2WB, D)
        distances = pairwise_distance(anchors, candidates, self.distance)  # (2B, 2WB)

        rows = torch.arange(2 * batch, device=z1.device)
        self_cols = torch.cat([views.sample, views.sample + global_batch])
        partner_cols = torch.cat([views.sample + global_batch, views.sample])  # the other view
        negative_mask = views.label.repeat(2)[:, None] != views.all_label.repeat(2)[None, :]  # (2B, 2WB)
        positive_key, all_positive_key = (
            (views.label, views.all_label) if self.use_labels else (views.sample, views.all_sample)
        )
        positive_mask = positive_key.repeat(2)[:, None] == all_positive_key.repeat(2)[None, :]
        positive_mask[rows, self_cols] = False
        # Without use_labels each anchor has one positive, its other view: no host sync to find it.
        pairs = None if self.use_labels else (rows, partner_cols)
        losses, valid = mine_triplets(distances, positive_mask, negative_mask, self.margin, self.mining, pairs)

        count = views.global_count(valid.sum())
        # No valid anchor anywhere: every term is 0 and the clamp keeps a graph-connected 0.
        return losses.where(valid, 0.0).sum() * views.workers / count.clamp(min=1)


def mine_triplets(
    distances: torch.Tensor,
    positive_mask: torch.Tensor,
    negative_mask: torch.Tensor,
    margin: float,
    mining: str,
    pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The hinge terms of the mined triplets and which of them are valid.

    distances, positive_mask, negative_mask: (N, M), anchors against candidates. "batch_hard":
    one term per anchor (N,), valid when it has a positive and a negative. "semi_hard": one term
    per (anchor, positive) pair, valid when the anchor has a negative; `pairs` gives the (P,)
    rows and columns of those pairs when the caller knows them, else they are found in
    `positive_mask`. Invalid terms hold a finite placeholder for the caller to mask out.
    """
    has_negative = negative_mask.any(dim=1)  # (N,)
    if mining == "batch_hard":
        valid = positive_mask.any(dim=1) & has_negative
        hardest_positive = distances.masked_fill(~positive_mask, float("-inf")).amax(dim=1)  # (N,)
        hardest_negative = distances.masked_fill(~negative_mask, float("inf")).amin(dim=1)  # (N,)
        positive_distance = hardest_positive.where(valid, 0.0)
        return F.relu(positive_distance - hardest_negative.where(valid, 0.0) + margin), valid

    anchor_rows, positive_cols = pairs if pairs is not None else torch.nonzero(positive_mask, as_tuple=True)  # (P,)
    positive_distance = distances[anchor_rows, positive_cols]  # (P,)
    anchor_distances = distances[anchor_rows]  # (P, M)
    negatives = negative_mask[anchor_rows]  # (P, M)
    farther = negatives & (anchor_distances > positive_distance[:, None])
    closest_farther = anchor_distances.masked_fill(~farther, float("inf")).amin(dim=1)  # (P,)
    farthest = anchor_distances.masked_fill(~negatives, float("-inf")).amax(dim=1)  # (P,)
    valid = has_negative[anchor_rows]
    negative_distance = torch.where(farther.any(dim=1), closest_farther, farthest)
    return F.relu(positive_distance - negative_distance.where(valid, positive_distance) + margin), valid
