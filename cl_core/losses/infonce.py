"""InfoNCE with explicit negatives (van den Oord et al. 2018, "Representation Learning with
Contrastive Predictive Coding")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InfoNCELoss(nn.Module):
    """InfoNCE over one positive and K explicitly given negatives per query.

    For query q_i with positive p_i and negatives n_i1..n_iK:
        l(i) = -log( exp(s(q_i, p_i)) / (exp(s(q_i, p_i)) + sum_k exp(s(q_i, n_ik))) ),
        s = cosine / temperature.
    The loss is the mean of l over the B queries. Negatives are either per query (B, K, D) or
    one set shared by every query (K, D), as in a MoCo queue. There are no in-batch negatives,
    hence nothing to gather across workers: use `NTXentLoss` or `MultipleNegativesRankingLoss`
    for that.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """query, positive: (B, D); negatives: (B, K, D) per query or (K, D) shared. Returns a
        scalar."""
        if query.shape != positive.shape or query.dim() != 2:
            raise ValueError(
                f"query and positive must both be (B, D); got {tuple(query.shape)} and {tuple(positive.shape)}"
            )
        batch, dim = query.shape
        per_query = negatives.dim() == 3 and negatives.shape[0] == batch and negatives.shape[2] == dim
        shared = negatives.dim() == 2 and negatives.shape[1] == dim
        if not (per_query or shared):
            raise ValueError(f"negatives must be ({batch}, K, {dim}) or (K, {dim}); got {tuple(negatives.shape)}")

        query = F.normalize(query, dim=-1)
        positive = F.normalize(positive, dim=-1)
        negatives = F.normalize(negatives, dim=-1)
        positive_logits = (query * positive).sum(dim=-1, keepdim=True)  # (B, 1)
        if per_query:
            negative_logits = torch.einsum("bd,bkd->bk", query, negatives)  # (B, K)
        else:
            negative_logits = query @ negatives.T  # (B, K)
        logits = torch.cat([positive_logits, negative_logits], dim=1) / self.temperature  # (B, 1+K)
        targets = torch.zeros(batch, dtype=torch.long, device=query.device)
        return F.cross_entropy(logits, targets)
