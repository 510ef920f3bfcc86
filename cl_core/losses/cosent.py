"""CoSENT, a ranking loss on the cosines of scored sentence pairs (Su 2022, "CoSENT: a more
efficient sentence vector scheme than Sentence-BERT", kexue.fm/archives/8847; published as
Huang et al. 2024, "CoSENT: Consistent Sentence Embedding via Similarity Ranking", IEEE/ACM
TASLP; the formulation of sentence-transformers' `CoSENTLoss`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cl_core import distributed


class CoSENTLoss(nn.Module):
    """Every pair with a higher gold score must have a higher cosine than every lower-scored pair.

    For pairs (u_i, v_i) with gold scores s_i and cosines c_i = cos(u_i, v_i):
        loss = log(1 + sum over (i, j) with s_i > s_j of exp(scale * (c_j - c_i))),
    a smooth maximum of the ranking violations c_j - c_i (0 only in the limit where every order
    holds by a wide margin). Unlike a regression of cos onto the score (CosineSimilarityLoss), only
    the order of the scores matters, so any monotone rescaling of the gold scores gives the same
    loss; pairs with equal scores are not compared.

    The double sum is computed as sentence-transformers does, in O(B log B) time and O(B) memory:
    sort the pairs by score, and for each pair take a suffix logsumexp over the pairs scored
    strictly higher. This keeps a large gathered batch cheap, where the (B, B) matrix would not.

    With `gather_distributed=True` and an initialised process group, every worker gathers all
    workers' cosines (with gradients) and scores, and computes the loss of the global batch, so
    pairs are also ranked against the other workers' pairs. Each worker then holds the same loss;
    `gather_with_grad` sums the workers' gradients for each local row and DDP averages them, which
    gives exactly the single-process gradient on the concatenated batch.
    """

    def __init__(self, scale: float = 20.0, gather_distributed: bool = True) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be > 0 (it multiplies the cosine differences), got {scale}")
        self.scale = scale
        self.gather_distributed = gather_distributed

    def forward(self, embeddings1: torch.Tensor, embeddings2: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """embeddings1, embeddings2: (B, D), the two sides of B pairs; scores: (B,) gold similarity
        (float or integer, any scale; no gradient flows into it). Returns a scalar."""
        if embeddings1.shape != embeddings2.shape or embeddings1.dim() != 2:
            raise ValueError(
                "embeddings1 and embeddings2 must both be (B, D); "
                f"got {tuple(embeddings1.shape)} and {tuple(embeddings2.shape)}"
            )
        if scores.shape != (embeddings1.shape[0],):
            raise ValueError(f"scores must be ({embeddings1.shape[0]},); got {tuple(scores.shape)}")
        # fp16/bf16 cosines times scale 20 lose the small differences the loss ranks on.
        dtype = torch.promote_types(embeddings1.dtype, torch.float32)
        cosines = (F.normalize(embeddings1.to(dtype), dim=-1) * F.normalize(embeddings2.to(dtype), dim=-1)).sum(-1)  # (B,)
        scores = scores.detach()
        if scores.dtype == torch.bool:
            scores = scores.int()  # sort and searchsorted take no bools
        if self.gather_distributed:
            cosines = distributed.gather_with_grad(cosines)  # (W*B,)
            # Gold scores carry no gradient; gather_with_grad's backward never runs for them.
            scores = distributed.gather_with_grad(scores)  # (W*B,)

        scores, order = scores.sort()  # ascending, so higher-scored pairs are a suffix
        logits = self.scale * cosines[order]  # (N,)
        # First position scored strictly higher than each pair (N where none is).
        higher_start = torch.searchsorted(scores, scores, right=True)  # (N,)
        # suffix[m] = log sum_{t >= m} exp(-logit_t); position N is the empty sum, -inf.
        suffix = torch.logcumsumexp(-logits.flip(0), dim=0).flip(0)
        suffix = torch.cat((suffix, logits.new_full((1,), float("-inf"))))
        # per_lower[j] = log sum over higher-scored i of exp(scale * (c_j - c_i)).
        per_lower = logits + suffix[higher_start]  # (N,)
        # log(1 + sum exp(.)): the 1 is a zero logit.
        return torch.logsumexp(torch.cat((logits.new_zeros(1), per_lower)), dim=0)
