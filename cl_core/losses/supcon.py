"""Supervised contrastive loss, L_out (Khosla et al. 2020, "Supervised Contrastive Learning")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cl_core import distributed
from cl_core.losses.global_batch import batch_keys


class SupConLoss(nn.Module):
    """SupCon: every other view with the anchor's label is a positive.

    Over the N*V views of N samples (V views each), with A(i) all views but i and P(i) those of
    A(i) sharing i's label:
        l(i) = -1/|P(i)| sum_{p in P(i)} log( exp(s(i, p) / T) / sum_{a in A(i)} exp(s(i, a) / T) ),
        s = cosine.
    The loss is the mean of l over anchors with |P(i)| > 0; anchors without a positive (a
    single-view sample alone in its class) are skipped. Unlike the reference code of the paper
    there is no extra `temperature / base_temperature` factor (pytorch-metric-learning does the
    same). `labels=None` makes every sample its own class, which reduces SupCon to SimCLR's
    multi-view loss.

    With `gather_distributed=True` and an initialised process group, A(i) and P(i) range over
    the global batch (features gathered with gradients, labels without) while each worker
    computes only its own anchors' rows: memory O(local x global). The worker's sum is divided
    by (global number of anchors with a positive) / W, so that the mean of the workers' values
    (what DDP's gradient averaging optimises) is exactly the single-process loss on the
    concatenated batch, even when anchors are skipped unevenly across workers.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """features: (B, V, D) with V views per sample, or (B, D) for one view; labels: (B,)
        integer class per sample, or None. Returns a scalar."""
        if features.dim() == 2:
            features = features.unsqueeze(1)  # (B, 1, D)
        if features.dim() != 3:
            raise ValueError(f"features must be (B, V, D) or (B, D); got {tuple(features.shape)}")
        batch, views, _ = features.shape
        if labels is not None and labels.shape != (batch,):
            raise ValueError(f"labels must have shape ({batch},), got {tuple(labels.shape)}")
        features = F.normalize(features, dim=-1)

        if self.gather_distributed:
            all_features = distributed.gather_with_grad(features)  # (W*B, V, D)
            offset = distributed.rank() * batch if all_features.shape[0] != batch else 0
        else:
            all_features, offset = features, 0
        global_batch = all_features.shape[0]
        device = features.device
        labels, all_labels = batch_keys(batch, offset, global_batch, labels, device)  # (B,), (W*B,)

        # View-major order, as the paper's code: row v*B + b is view v of sample b.
        anchors = features.transpose(0, 1).reshape(views * batch, -1)  # (V*B, D)
        candidates = all_features.transpose(0, 1).reshape(views * global_batch, -1)  # (V*W*B, D)
        anchor_labels = labels.repeat(views)  # (V*B,)
        candidate_labels = all_labels.repeat(views)  # (V*W*B,)
        logits = anchors @ candidates.T / self.temperature  # (V*B, V*W*B)

        rows = torch.arange(views * batch, device=device)
        local = torch.arange(batch, device=device) + offset
        self_cols = (torch.arange(views, device=device)[:, None] * global_batch + local[None, :]).reshape(-1)
        is_self = torch.zeros_like(logits, dtype=torch.bool)
        is_self[rows, self_cols] = True
        positive = (anchor_labels[:, None] == candidate_labels[None, :]) & ~is_self  # (V*B, V*W*B)

        log_prob = logits - torch.logsumexp(logits.masked_fill(is_self, float("-inf")), dim=1, keepdim=True)
        positive_count = positive.sum(dim=1)  # (V*B,)
        per_anchor = -(log_prob * positive).sum(dim=1) / positive_count.clamp(min=1)  # (V*B,)

        # Anchors with a positive, counted over the global batch from label counts: O(W*B) memory.
        _, inverse, counts = torch.unique(all_labels, return_inverse=True, return_counts=True)
        global_valid = views * (views * counts[inverse] > 1).sum()
        workers = global_batch // batch
        # With no valid anchor every term is 0: the clamp returns a graph-connected 0, no sync.
        return per_anchor.sum() * workers / global_valid.clamp(min=1)
