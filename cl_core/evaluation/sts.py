"""Semantic textual similarity: rank correlation of embedding cosines with human scores.

The STS benchmark protocol (Cer et al. 2017, "SemEval-2017 Task 1: Semantic Textual Similarity";
used to evaluate sentence embeddings by Reimers & Gurevych 2019, Sentence-BERT, and Gao et al.
2021, SimCSE): embed both sentences of each pair, take the cosine similarity, and correlate it
with the gold similarity scores. Spearman's rank correlation is the headline number (SimCSE,
section 4; it ignores the scale of the cosines, which differs between models); Pearson is
reported alongside. Values are plain correlations in [-1, 1], not the x100 of papers' tables.
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray


def _as_float64(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        # numpy has no bfloat16; the correlations are computed in float64 anyway.
        x = x.double() if x.is_floating_point() else x
        return x.numpy()
    return np.asarray(x, dtype=np.float64)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values` (N,), tied values sharing the mean of the ranks they span
    (scipy.stats.rankdata's "average"): [10, 20, 20, 30] -> [1, 2.5, 2.5, 4]."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # last rank of each distinct value, in ascending order
    return ((ends - counts + 1 + ends) / 2.0)[inverse.reshape(-1)]


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    if denominator == 0:
        # Constant cosines (a collapsed encoder): no ranking information at all. 0 keeps the
        # metric loggable during training instead of a NaN; constant gold scores raise earlier.
        return 0.0
    return float(np.clip((x @ y) / denominator, -1.0, 1.0))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of two (N,) arrays (average ranks for ties; 0 when either is constant)."""
    return _pearson(average_ranks(x), average_ranks(y))


def cosine_similarities(embeddings1: ArrayLike, embeddings2: ArrayLike) -> np.ndarray:
    """Row-wise cosine of two (N, D) arrays -> (N,) float64; a zero row has cosine 0."""
    a, b = _as_float64(embeddings1), _as_float64(embeddings2)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"embeddings1 and embeddings2 must both be (N, D); got {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)  # (N,)
    return np.einsum("nd,nd->n", a, b) / np.maximum(norms, 1e-12)


def sts_correlation(embeddings1: ArrayLike, embeddings2: ArrayLike, gold: ArrayLike) -> dict[str, float]:
    """Spearman and Pearson correlation of cos(embeddings1[i], embeddings2[i]) with gold[i].

    Args:
        embeddings1, embeddings2: (N, D) float, the two sentences of each of N pairs.
        gold: (N,) float similarity scores (any scale, e.g. STS-B's 0..5), N >= 2, not all equal.

    Returns:
        {"spearman": float, "pearson": float}, each in [-1, 1]. Spearman ranks tied values by
        their average rank, so it equals scipy.stats.spearmanr. Both are 0 when all cosines are
        equal (they are undefined there).
    """
    cosines = cosine_similarities(embeddings1, embeddings2)  # (N,)
    gold = _as_float64(gold)
    if gold.ndim != 1 or gold.shape[0] != cosines.shape[0]:
        raise ValueError(f"gold must be ({cosines.shape[0]},) to match the embeddings; got shape {gold.shape}")
    if gold.shape[0] < 2:
        raise ValueError(f"a correlation needs at least 2 pairs, got {gold.shape[0]}")
    if not (np.isfinite(gold).all() and np.isfinite(cosines).all()):
        raise ValueError("gold scores and embeddings must be finite")
    if np.all(gold == gold[0]):
        raise ValueError("gold scores are all equal; the correlation is undefined")
    return {
        "spearman": spearman(cosines, gold),
        "pearson": _pearson(cosines, gold),
    }
