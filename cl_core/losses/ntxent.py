"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cl_core.losses.view_logits import ViewLogits, ViewLogitsLoss


class NTXentLoss(ViewLogitsLoss):
    """NT-Xent over two views, optionally with negatives gathered from every worker.

    For 2N views (N per view), each view's positive is the other view of the same sample and
    the remaining 2N-2 views are negatives:
        l(i) = -log( exp(s(i, p(i)) / T) / sum_{k != i} exp(s(i, k) / T) ),  s = cosine.
    The loss is the mean of l over the 2N views.

    With `gather_distributed=True` and an initialised process group, the candidate set is the
    global batch (all workers' views, gathered with gradients) while each worker computes only
    its own rows of the logits ("local loss"): memory is O(local x global), not O(global^2).
    The returned value is the mean over this worker's rows; averaged over workers (as DDP
    averages gradients) it equals the single-process loss on the concatenated batch.

    False negatives: views of another sample with the same `ids` entry (a duplicate), and, with
    `mask_same_label=True`, views of a sample with the same `labels` entry, are dropped from
    the denominator; the positive view is always kept.
    """

    def __init__(
        self, temperature: float = 0.5, gather_distributed: bool = True, mask_same_label: bool = False
    ) -> None:
        super().__init__(temperature, gather_distributed, mask_same_label)

    def reduce(self, view: ViewLogits, excluded: torch.Tensor | None) -> torch.Tensor:
        logits, rows = view.logits, view.rows
        if excluded is not None:
            excluded[rows, view.positive_cols] = False
            logits = logits.masked_fill(excluded, float("-inf"))
        logits[rows, view.self_cols] = float("-inf")  # a view is never its own negative
        return F.cross_entropy(logits, view.positive_cols)
