"""Weighted k-nearest-neighbour classification of embeddings (Wu et al. 2018).

"Unsupervised Feature Learning via Non-Parametric Instance Discrimination" (Wu, Xiong, Yu, Lin,
CVPR 2018) evaluates a frozen encoder by classifying each test embedding from its k most
cosine-similar training embeddings, each neighbour voting for its own label with weight
exp(sim / T). InstDisc, MoCo, DINO and lightly all report this number (k=20 or 200, T=0.07), so
`knn_top1` follows that protocol rather than a plain majority vote.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cl_core.evaluation.embeddings import ArrayLike, as_embeddings, check_labels_shape, check_same_width


def _as_labels(y: ArrayLike, name: str, length: int) -> torch.Tensor:
    y = torch.as_tensor(y).detach()
    check_labels_shape(y, name, length)
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class ids; got dtype {y.dtype}")
    return y.long()


@torch.no_grad()
def knn_predict(
    train_embeddings: ArrayLike,
    train_labels: ArrayLike,
    test_embeddings: ArrayLike,
    k: int = 20,
    temperature: float = 0.07,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Predict a label for every test embedding by a similarity-weighted vote of its k neighbours.

    Args:
        train_embeddings: (N, D) float, the labelled bank (tensor or numpy array).
        train_labels: (N,) int class ids; need not be contiguous (e.g. {3, 7, 42} is fine).
        test_embeddings: (M, D) float queries.
        k: neighbours per query; values above N use the whole bank.
        temperature: T in the vote weight exp(cos / T); smaller T trusts the nearest more.
        batch_size: queries per chunk. Peak memory is O(batch_size x N) for the similarity
            block, so 60k train x 1024 queries in float32 is about 250 MB.

    Returns:
        (M,) int64 tensor on the CPU of predicted class ids. Equal vote totals go to the
        smallest class id (argmax returns the first maximum).

    The computation runs on the device of `train_embeddings`; queries are moved chunk by chunk.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    bank = as_embeddings(train_embeddings, "train_embeddings")
    queries = as_embeddings(test_embeddings, "test_embeddings")
    labels = _as_labels(train_labels, "train_labels", bank.shape[0])
    if bank.shape[0] == 0:
        raise ValueError("train_embeddings is empty; kNN needs at least one labelled sample")
    check_same_width(bank, queries, "train and test embeddings")

    device = bank.device
    dtype = torch.promote_types(bank.dtype, queries.dtype)
    bank = F.normalize(bank.to(dtype), dim=1)  # (N, D), unit rows so a dot product is cosine
    # Map arbitrary ids to 0..C-1 so the vote is a dense (chunk, C) scatter, not a dict per query.
    classes, class_index = torch.unique(labels, return_inverse=True)  # (C,), (N,)
    classes, class_index = classes.cpu(), class_index.to(device)  # ids out on CPU, votes on device
    num_classes = classes.numel()
    k = min(k, bank.shape[0])

    predictions = []
    for start in range(0, queries.shape[0], batch_size):
        chunk = F.normalize(queries[start : start + batch_size].to(device, dtype), dim=1)  # (B, D)
        sims = chunk @ bank.T  # (B, N)
        top_sims, top_idx = sims.topk(k, dim=1)  # (B, k), (B, k)
        # Subtracting each row's best similarity rescales that row's weights by one constant, so
        # the argmax is unchanged, while exp(1 / T) no longer overflows float32 for small T.
        weights = ((top_sims - top_sims[:, :1]) / temperature).exp()  # (B, k)
        votes = torch.zeros(chunk.shape[0], num_classes, dtype=dtype, device=device)  # (B, C)
        votes.scatter_add_(1, class_index[top_idx], weights)
        predictions.append(votes.argmax(dim=1).cpu())  # (B,)

    if not predictions:
        return torch.empty(0, dtype=torch.long)
    return classes[torch.cat(predictions)]  # (M,), back to the caller's label ids


def knn_hits(
    train_embeddings: ArrayLike,
    train_labels: ArrayLike,
    test_embeddings: ArrayLike,
    test_labels: ArrayLike,
    **knn_options: Any,
) -> np.ndarray:
    """(M,) bool: whether the weighted kNN classifier of `knn_predict` gets each test sample's
    label right; the per-sample values an interval of kNN top-1 resamples
    (`cl_core.evaluation.intervals.mean_interval`).

    Args:
        train_embeddings: (N, D) float; train_labels: (N,) int.
        test_embeddings: (M, D) float; test_labels: (M,) int, M >= 1.
        knn_options: k, temperature, batch_size, passed to `knn_predict` (its defaults apply).
    """
    m = torch.as_tensor(test_embeddings).shape[0]
    test_labels = _as_labels(test_labels, "test_labels", m).cpu()  # predictions come back on CPU
    if m == 0:
        raise ValueError("test_embeddings is empty; accuracy is undefined")
    predicted = knn_predict(train_embeddings, train_labels, test_embeddings, **knn_options)  # (M,)
    return (predicted == test_labels).numpy()


def knn_top1(
    train_embeddings: ArrayLike,
    train_labels: ArrayLike,
    test_embeddings: ArrayLike,
    test_labels: ArrayLike,
    **knn_options: Any,
) -> float:
    """Top-1 accuracy in [0, 1] of the weighted kNN classifier: the mean of `knn_hits` (same arguments)."""
    return float(knn_hits(train_embeddings, train_labels, test_embeddings, test_labels, **knn_options).mean())
