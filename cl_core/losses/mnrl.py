"""Multiple negatives ranking loss (Henderson et al. 2017, "Efficient Natural Language Response
Suggestion for Smart Reply"; the formulation of sentence-transformers'
`MultipleNegativesRankingLoss` and `MultipleNegativesSymmetricRankingLoss`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cl_core import distributed
from cl_core.losses.masking import false_negative_mask


class MultipleNegativesRankingLoss(nn.Module):
    """Rank each anchor's positive above every other positive of the batch and all hard negatives.

    For anchors a_i, positives p_i (B pairs) and optional hard negatives n_ih (H per anchor):
        scores(i, c) = scale * cos(a_i, c) over candidates c in {p_1..p_B} + {n_jh for all j, h},
        forward = CE(scores, target i),
    so every anchor sees every hard negative of the batch, as in sentence-transformers. With
    `symmetric=True` a second term ranks each positive's anchor above the other anchors,
        backward = CE(scale * cos(p_i, a_j) over j, target i),
    and the loss is (forward + backward) / 2. Hard negatives only enter the forward term.

    With `gather_distributed=True` and an initialised process group, the candidates (positives,
    hard negatives, and anchors for the symmetric term) are the global batch, gathered with
    gradients, while each worker scores only its own rows: memory O(local x global). The mean of
    the workers' values equals the single-process loss on the concatenated batch.

    False negatives: in-batch positives (and, symmetrically, anchors) of another pair with the
    same `ids` entry, and with `mask_same_label=True` the same `labels` entry, are not used as
    negatives; hard negatives are always kept.
    """

    def __init__(
        self,
        scale: float = 20.0,
        symmetric: bool = False,
        gather_distributed: bool = True,
        mask_same_label: bool = False,
    ) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = scale
        self.symmetric = symmetric
        self.gather_distributed = gather_distributed
        self.mask_same_label = mask_same_label

    def forward(
        self,
        anchors: torch.Tensor,
        positives: torch.Tensor,
        hard_negatives: torch.Tensor | None = None,
        *,
        ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """anchors, positives: (B, D); hard_negatives: (B, H, D) or None; ids, labels: optional
        (B,) integers for false-negative masking. Returns a scalar."""
        if anchors.shape != positives.shape or anchors.dim() != 2:
            raise ValueError(
                f"anchors and positives must both be (B, D); got {tuple(anchors.shape)} and {tuple(positives.shape)}"
            )
        batch, dim = anchors.shape
        if hard_negatives is not None and (
            hard_negatives.dim() != 3 or hard_negatives.shape[0] != batch or hard_negatives.shape[2] != dim
        ):
            raise ValueError(f"hard_negatives must be ({batch}, H, {dim}); got {tuple(hard_negatives.shape)}")
        anchors = F.normalize(anchors, dim=-1)
        positives = F.normalize(positives, dim=-1)

        if self.gather_distributed:
            all_positives = distributed.gather_with_grad(positives)  # (W*B, D)
            offset = distributed.rank() * batch if all_positives.shape[0] != batch else 0
        else:
            all_positives, offset = positives, 0
        targets = torch.arange(batch, device=anchors.device) + offset
        rows = torch.arange(batch, device=anchors.device)

        excluded = false_negative_mask(
            batch, ids, labels, mask_same_label=self.mask_same_label, gather=self.gather_distributed,
            device=anchors.device,
        )
        if excluded is not None:
            excluded[rows, targets] = False  # (B, W*B), the pair's own positive stays

        in_batch = self.scale * anchors @ all_positives.T  # (B, W*B)
        if excluded is not None:
            in_batch = in_batch.masked_fill(excluded, float("-inf"))
        scores = [in_batch]
        if hard_negatives is not None:
            hard_negatives = F.normalize(hard_negatives, dim=-1)
            if self.gather_distributed:
                hard_negatives = distributed.gather_with_grad(hard_negatives)  # (W*B, H, D)
            scores.append(self.scale * anchors @ hard_negatives.reshape(-1, dim).T)  # (B, W*B*H)
        loss = F.cross_entropy(torch.cat(scores, dim=1), targets)
        if not self.symmetric:
            return loss

        all_anchors = distributed.gather_with_grad(anchors) if self.gather_distributed else anchors  # (W*B, D)
        reverse = self.scale * positives @ all_anchors.T  # (B, W*B)
        if excluded is not None:
            reverse = reverse.masked_fill(excluded, float("-inf"))
        return (loss + F.cross_entropy(reverse, targets)) / 2
