"""Triplet margin loss (Schroff et al. 2015, "FaceNet"), with in-batch mining: batch-hard
(Hermans et al. 2017, "In Defense of the Triplet Loss for Person Re-Identification") and
semi-hard (FaceNet's)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cl_core.losses.distances import check_distance, paired_distance, pairwise_distance

MINING = (None, "batch_hard", "semi_hard")


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
    Mining is within this worker's batch; nothing is gathered across workers.
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
        batch = embeddings.shape[0]
        distances = pairwise_distance(embeddings, embeddings, self.distance)  # (B, B)
        same = labels[:, None] == labels[None, :]  # (B, B)
        eye = torch.eye(batch, dtype=torch.bool, device=embeddings.device)
        positive_mask = same & ~eye
        negative_mask = ~same
        has_negative = negative_mask.any(dim=1)  # (B,)

        if self.mining == "batch_hard":
            hardest_positive = distances.masked_fill(~positive_mask, float("-inf")).amax(dim=1)  # (B,)
            hardest_negative = distances.masked_fill(~negative_mask, float("inf")).amin(dim=1)  # (B,)
            valid = positive_mask.any(dim=1) & has_negative
            losses = F.relu(hardest_positive[valid] - hardest_negative[valid] + self.margin)
        else:
            anchors, positives = torch.nonzero(positive_mask & has_negative[:, None], as_tuple=True)  # (P,)
            positive_distance = distances[anchors, positives]  # (P,)
            anchor_rows = distances[anchors]  # (P, B)
            negatives = negative_mask[anchors]  # (P, B)
            farther = negatives & (anchor_rows > positive_distance[:, None])
            closest_farther = anchor_rows.masked_fill(~farther, float("inf")).amin(dim=1)  # (P,)
            farthest = anchor_rows.masked_fill(~negatives, float("-inf")).amax(dim=1)  # (P,)
            negative_distance = torch.where(farther.any(dim=1), closest_farther, farthest)
            losses = F.relu(positive_distance - negative_distance + self.margin)

        if losses.numel() == 0:
            return embeddings.sum() * 0.0
        return losses.mean()
