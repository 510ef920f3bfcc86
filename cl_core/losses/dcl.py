"""DCL, decoupled contrastive learning (Yeh et al. 2022, "Decoupled Contrastive Learning", ECCV)."""

from __future__ import annotations

import torch

from cl_core.losses.view_logits import ViewLogits, ViewLogitsLoss


class DCLLoss(ViewLogitsLoss):
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
        super().__init__(temperature, gather_distributed, mask_same_label)

    def reduce(self, view: ViewLogits, excluded: torch.Tensor | None) -> torch.Tensor:
        logits, rows = view.logits, view.rows
        positive_logits = logits[rows, view.positive_cols]  # (2B,)
        if excluded is None:
            excluded = torch.zeros_like(logits, dtype=torch.bool)
        excluded[rows, view.self_cols] = True
        excluded[rows, view.positive_cols] = True
        has_negative = ~excluded.all(dim=1, keepdim=True)  # (2B, 1)
        # A row without negatives would give logsumexp(-inf...) = -inf and NaN gradients; it is
        # zeroed before the reduction instead, and its loss term set to 0 below.
        negative_logits = logits.masked_fill(excluded, float("-inf")).where(has_negative, 0.0)
        per_view = -positive_logits + torch.logsumexp(negative_logits, dim=1)  # (2B,)
        return per_view.where(has_negative.squeeze(1), 0.0).mean()
