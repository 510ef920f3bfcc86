"""Two-dimensional projections of embeddings, for drawing a map of the representation space.

- "pca": principal component analysis, the two directions of largest variance (Pearson 1901;
  Hotelling 1933). Linear and fast, preserves global structure; the first look at a run.
- "tsne": t-distributed stochastic neighbour embedding (van der Maaten & Hinton 2008, JMLR).
  Non-linear, preserves local neighbourhoods (clusters) but not distances between clusters.
  Barnes-Hut t-SNE costs O(N log N) per iteration and takes minutes for tens of thousands of
  points, so callers subsample (a few thousand points read well on a plot anyway).

Only the coordinates are computed here; plotting lives outside `cl_core`.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

ArrayLike = torch.Tensor | np.ndarray

METHODS = ("pca", "tsne")


def project_2d(
    embeddings: ArrayLike, method: str = "pca", seed: int = 0, perplexity: float = 30.0
) -> np.ndarray:
    """Project (N, D) embeddings to (N, 2) float32 coordinates.

    Args:
        embeddings: (N, D) float, N >= 2 and D >= 2 (tensor or numpy array).
        method: "pca" or "tsne".
        seed: random_state of the method; the same input and seed give the same coordinates.
        perplexity: t-SNE's effective neighbourhood size (ignored by PCA). sklearn requires it
            below N, so it is capped at N - 1 for very small inputs.

    t-SNE is initialised from the PCA projection (init="pca"), which keeps the global layout more
    stable across seeds than a random start (Kobak & Linderman 2021, Nat. Biotechnol.).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().cpu().float().numpy()
    x = np.asarray(embeddings, dtype=np.float32)  # (N, D)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"embeddings must be (N, D) with N >= 2 and D >= 2; got shape {x.shape}")

    if method == "pca":
        coords = PCA(n_components=2, random_state=seed).fit_transform(x)  # (N, 2)
    else:
        if not perplexity > 0:
            raise ValueError(f"perplexity must be > 0, got {perplexity}")
        tsne = TSNE(
            n_components=2,
            init="pca",
            perplexity=min(perplexity, x.shape[0] - 1),
            learning_rate="auto",
            random_state=seed,
        )
        # One OpenMP thread: Barnes-Hut t-SNE meets its threads at a barrier on each of ~1,000
        # iterations, and on busy cores (Ray workers, torch's own libgomp) every barrier waits for
        # a time slice: 120 points took 29 s with two threads and 1.2 s with one on 2 busy cores.
        with threadpool_limits(limits=1, user_api="openmp"):
            coords = tsne.fit_transform(x)  # (N, 2)
    return np.asarray(coords, dtype=np.float32)
