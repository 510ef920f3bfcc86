"""InfoNCE (van den Oord et al. 2018, "Representation Learning with Contrastive Predictive
Coding"): with explicit negatives, and its in-batch form on two views of a global batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cl_core.losses.global_batch import two_view_batch


def _checked_temperature(temperature: float) -> float:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return temperature


class InfoNCELoss(nn.Module):
    """InfoNCE over one positive and K explicitly given negatives per query.

    For query q_i with positive p_i and negatives n_i1..n_iK:
        l(i) = -log( exp(s(q_i, p_i)) / (exp(s(q_i, p_i)) + sum_k exp(s(q_i, n_ik))) ),
        s = cosine / temperature.
    The loss is the mean of l over the B queries. Negatives are either per query (B, K, D) or
    one set shared by every query (K, D), as in a MoCo queue. There are no in-batch negatives,
    hence nothing to gather across workers: use `NTXentLoss` or `MultipleNegativesRankingLoss`
    for that, or `InBatchInfoNCELoss` for two views.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = _checked_temperature(temperature)

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


class InBatchInfoNCELoss(nn.Module):
    """InfoNCE on two views: query z1_i, positive z2_i, negatives the other samples' second views
    z2_j (j != i) of the global batch,
        l(i) = -log( exp(s(z1_i, z2_i)) / sum_j exp(s(z1_i, z2_j)) ),  s = cosine / temperature,
    computed as one (B, W*B) logits matrix rather than materialising (B, W*B-1, D) negatives
    for `InfoNCELoss`. One-directional (z1 queries, z2 keys), unlike a symmetric MNRL.

    With labels, a same-label z2_j (j != i) is not a negative. With `gather_distributed=True`
    and an initialised process group, the keys are every worker's z2 (gathered with gradients,
    labels without) and each worker scores its own queries: the mean of the workers' values is
    the single-process loss on the concatenated batch. Every rank must pass the same B.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True) -> None:
        super().__init__()
        self.temperature = _checked_temperature(temperature)
        self.gather_distributed = gather_distributed

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, *, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z1, z2: (B, D) the two views of B samples; labels: (B,) integers or None. Returns a
        scalar."""
        query = F.normalize(z1, dim=-1)
        views = two_view_batch(query, F.normalize(z2, dim=-1), labels, self.gather_distributed)
        targets = views.sample  # the global column of each query's positive
        logits = query @ views.all_z2.T / self.temperature  # (B, W*B)
        if labels is not None:
            excluded = views.label[:, None] == views.all_label[None, :]  # (B, W*B)
            excluded[torch.arange(views.batch, device=z1.device), targets] = False
            logits = logits.masked_fill(excluded, float("-inf"))
        return F.cross_entropy(logits, targets)
