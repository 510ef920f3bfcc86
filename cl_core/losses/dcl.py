"""DCL, decoupled contrastive learning (Yeh et al. 2022, "Decoupled Contrastive Learning", ECCV)."""

from __future__ import annotations

import torch
from torch import nn

from cl_core.losses.masking import false_negative_mask
from cl_core.losses.view_logits import two_view_logits


class DCLLoss(nn.Module):
    """NT-Xent with the positive removed from the denominator.

    Yeh et al. show that the positive term in NT-Xent's denominator couples the gradients of the
    positive and the negatives (the "negative-positive coupling"), which hurts small batches.
    For 2N views, each view's positive p(i) is the other view of the same sample:
        l(i) = -s(i, p(i)) / T + log sum_{k not in {i, p(i)}} exp(s(i, k) / T),  s = cosine.
    The loss is the mean of l over the 2N views (the unweighted DCL of the paper, not DCLW).
    A view left with no negative at all (a batch of one sample, or everything masked) adds 0.

    Distributed and false-negative masking behave exactly as in `NTXentLoss`: with
    `gather_distributed=True` the candidates are the global batch and each worker computes its
    own rows; duplicates by `ids` and, with `mask_same_label=True`, same-`labels` samples are
    never negatives.
    """

    def __init__(
        self, temperature: float = 0.1, gather_distributed: bool = True, mask_same_label: bool = False
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed
        self.mask_same_label = mask_same_label

    def forward(
        self,
        z1: torch.Tensor,
        z2: torch.Tensor,
        *,
        ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z1, z2: (B, D) embeddings of the two views of the same B samples; ids, labels:
        optional (B,) integers for false-negative masking. Returns a scalar."""
        view = two_view_logits(z1, z2, self.temperature, self.gather_distributed)
        logits, rows, self_cols, positive_cols, batch = view.logits, view.rows, view.self_cols, view.positive_cols, view.batch
        positive_logits = logits[rows, positive_cols]  # (2B,)

        excluded = false_negative_mask(
            batch, ids, labels, mask_same_label=self.mask_same_label, gather=self.gather_distributed,
            device=z1.device,
        )
        excluded = (
            excluded.repeat(2, 2)  # (2B, 2*W*B)
            if excluded is not None
            else torch.zeros_like(logits, dtype=torch.bool)
        )
        excluded[rows, self_cols] = True
        excluded[rows, positive_cols] = True
        has_negative = ~excluded.all(dim=1, keepdim=True)  # (2B, 1)
        # A row without negatives would give logsumexp(-inf...) = -inf and NaN gradients; it is
        # zeroed before the reduction instead, and its loss term set to 0 below.
        negative_logits = logits.masked_fill(excluded, float("-inf")).where(has_negative, 0.0)
        per_view = -positive_logits + torch.logsumexp(negative_logits, dim=1)  # (2B,)
        return per_view.where(has_negative.squeeze(1), 0.0).mean()
