"""Retrieval metrics by cosine similarity: Recall@k and MRR@k with one relevant item per query.

The dense-retrieval protocol (Karpukhin et al. 2020, "Dense Passage Retrieval for Open-Domain
Question Answering", top-k accuracy; MS MARCO's MRR@10, Nguyen et al. 2016): every query scores
the whole corpus by cosine, and the rank of its one relevant item r gives
    recall_at_k = mean over queries of [r <= k],
    mrr_at_k    = mean over queries of 1/r if r <= k else 0.
With one relevant item Recall@k is DPR's top-k accuracy, and (up to tie-breaking) the
accuracy@k and recall@k of sentence-transformers' `InformationRetrievalEvaluator`.

Ties are broken against the relevant item: its rank is the number of corpus items scoring at
least as high as it. A collapsed encoder (all cosines equal) therefore scores 1/C, not a
perfect 1.0 as an optimistic tie-break would give it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cl_core.evaluation.embeddings import ArrayLike, as_embeddings


@torch.no_grad()
def target_ranks(
    queries: ArrayLike, corpus: ArrayLike, targets: ArrayLike, batch_size: int = 1024
) -> torch.Tensor:
    """1-based rank (Q,) int64 of corpus[targets[q]] among all corpus items for each query,
    by cosine similarity, ties counted against the target.

    Args:
        queries: (Q, D) float; corpus: (C, D) float; targets: (Q,) int indices into corpus.
        batch_size: queries per chunk; peak memory is O(batch_size x C) for the score block.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    query_x, corpus_x = as_embeddings(queries, "queries"), as_embeddings(corpus, "corpus")
    if query_x.shape[1] != corpus_x.shape[1]:
        raise ValueError(f"queries and corpus differ in width: {query_x.shape[1]} vs {corpus_x.shape[1]}")
    if corpus_x.shape[0] == 0:
        raise ValueError("corpus is empty")
    targets = torch.as_tensor(targets).detach()
    if targets.dim() != 1 or targets.shape[0] != query_x.shape[0]:
        raise ValueError(f"targets must be ({query_x.shape[0]},); got shape {tuple(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise ValueError(f"targets must hold integer corpus indices; got dtype {targets.dtype}")
    if targets.numel() and (targets.min() < 0 or targets.max() >= corpus_x.shape[0]):
        raise ValueError(f"targets must index the corpus, 0..{corpus_x.shape[0] - 1}")

    device = corpus_x.device
    dtype = torch.promote_types(query_x.dtype, corpus_x.dtype)
    corpus_x = F.normalize(corpus_x.to(dtype), dim=1)  # (C, D), unit rows so a dot is a cosine
    targets = targets.long().to(device)
    ranks = []
    for start in range(0, query_x.shape[0], batch_size):
        chunk = F.normalize(query_x[start : start + batch_size].to(device, dtype), dim=1)  # (B, D)
        scores = chunk @ corpus_x.T  # (B, C)
        target_scores = scores.gather(1, targets[start : start + batch_size, None])  # (B, 1)
        # The target's own score comes out of the same product, so it counts itself exactly once.
        ranks.append((scores >= target_scores).sum(dim=1).cpu())  # (B,)
    return torch.cat(ranks) if ranks else torch.empty(0, dtype=torch.long)


def retrieval_scores(
    queries: ArrayLike,
    corpus: ArrayLike,
    targets: ArrayLike,
    ks: Sequence[int] = (1, 5, 10),
    mrr_at: int = 10,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Recall@k for each k in `ks` and MRR@`mrr_at`, each in [0, 1], averaged over queries.

    Args:
        queries: (Q, D) float, Q >= 1; corpus: (C, D) float.
        targets: (Q,) int, the index in `corpus` of each query's relevant item.
        ks: cut-offs for recall, each >= 1; mrr_at: cut-off for the reciprocal rank, >= 1.
        batch_size: as in `target_ranks`.

    Returns:
        {"recall_at_1": ..., "recall_at_5": ..., "recall_at_10": ..., "mrr_at_10": ...} for the
        defaults; one "recall_at_{k}" per k and one "mrr_at_{mrr_at}".
    """
    ks = list(ks)
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise ValueError(f"ks must be integers >= 1, got {ks}")
    if int(mrr_at) != mrr_at or mrr_at < 1:
        raise ValueError(f"mrr_at must be an integer >= 1, got {mrr_at}")
    return rank_scores(target_ranks(queries, corpus, targets, batch_size), ks, mrr_at)


def reciprocal_ranks(ranks: torch.Tensor, mrr_at: int = 10) -> torch.Tensor:
    """(Q,) float64: 1/rank where the rank is at most `mrr_at`, else 0 (each query's MRR@k term)."""
    ranks = ranks.double()
    return torch.where(ranks <= mrr_at, 1.0 / ranks, torch.zeros_like(ranks))


def rank_scores(ranks: torch.Tensor, ks: Sequence[int] = (1, 5, 10), mrr_at: int = 10) -> dict[str, float]:
    """`retrieval_scores` of the targets' ranks (Q,) that `target_ranks` gave."""
    if ranks.numel() == 0:
        raise ValueError("queries is empty; the metrics are undefined")
    scores = {f"recall_at_{int(k)}": (ranks <= k).double().mean().item() for k in ks}
    scores[f"mrr_at_{int(mrr_at)}"] = reciprocal_ranks(ranks, mrr_at).mean().item()
    return scores
