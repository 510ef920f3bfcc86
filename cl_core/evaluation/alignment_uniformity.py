"""Alignment and uniformity of embeddings on the hypersphere (Wang & Isola 2020).

"Understanding Contrastive Representation Learning through Alignment and Uniformity on the
Hypersphere" (ICML 2020) shows that the contrastive loss optimises two properties of the
L2-normalised features f:

    alignment  = E_{(x, y) ~ positive pairs} ||f(x) - f(y)||_2^alpha      (lower: positives close)
    uniformity = log E_{x, y ~ data, x != y} exp(-t ||f(x) - f(y)||_2^2)  (lower: spread out)

with alpha = 2 and t = 2 as in the paper. Both are reported here as plain numbers for tracking a
run; lower is better for each. The formulas follow the paper's reference code (`align_loss`,
`uniform_loss`), with the mean over pairs computed as a logsumexp for numerical safety.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = torch.Tensor | np.ndarray


def _unit_rows(x: ArrayLike, name: str) -> torch.Tensor:
    x = torch.as_tensor(x).detach()
    if x.dim() != 2:
        raise ValueError(f"{name} must be (N, D); got shape {tuple(x.shape)}")
    # Normalising inside makes both metrics depend on directions only, as in the paper, whatever
    # the caller passes (backbone features, projector outputs, unnormalised or not).
    x = x if x.dtype == torch.float64 else x.float()
    return F.normalize(x, dim=1)


@torch.no_grad()
def alignment(x: ArrayLike, y: ArrayLike, alpha: float = 2.0) -> float:
    """Mean ||f(x_i) - f(y_i)||_2^alpha over the N positive pairs (x_i, y_i).

    Args:
        x, y: (N, D) embeddings; row i of `x` and row i of `y` are two views of one sample.
        alpha: exponent on the distance, > 0 (the paper uses 2).

    Returns a float in [0, 2^alpha]: 0 when every pair coincides in direction.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    fx, fy = _unit_rows(x, "x"), _unit_rows(y, "y")  # (N, D), (N, D)
    if fx.shape != fy.shape:
        raise ValueError(
            f"x and y must have the same shape; got {tuple(fx.shape)} and {tuple(fy.shape)}"
        )
    if fx.shape[0] == 0:
        raise ValueError("alignment needs at least one pair")
    return (fx - fy).norm(p=2, dim=1).pow(alpha).mean().item()


@torch.no_grad()
def uniformity(x: ArrayLike, t: float = 2.0, max_samples: int = 5000, seed: int = 0) -> float:
    """log of the mean Gaussian potential exp(-t ||f(x_i) - f(x_j)||^2) over distinct pairs i < j.

    Args:
        x: (N, D) embeddings, N >= 2.
        t: potential scale, > 0 (the paper uses 2).
        max_samples: above this many rows, a fixed random subset of `max_samples` rows is used.
            The metric needs all N(N-1)/2 pairwise distances: 60,000 rows would be 1.8e9 pairs
            (7 GB in float32), whereas 5,000 rows give 12.5 million pairs (50 MB) and estimate
            the mean potential closely enough to compare checkpoints.
        seed: seeds that subset, so the same embeddings always give the same number.

    Returns a float in [-4t, 0]: -4t (= -8 for t=2) for two antipodal points, 0 when all collapse.
    """
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    if max_samples < 2:
        raise ValueError(f"max_samples must be >= 2, got {max_samples}")
    fx = _unit_rows(x, "x")  # (N, D)
    n = fx.shape[0]
    if n < 2:
        raise ValueError(f"uniformity needs at least two embeddings, got {n}")
    if n > max_samples:
        # A random subset rather than the first rows: stored embeddings are often sorted by class
        # or shard, and a prefix would measure one region of the sphere only.
        generator = torch.Generator().manual_seed(seed)
        keep = torch.randperm(n, generator=generator)[:max_samples]
        fx = fx[keep.to(fx.device)]  # (max_samples, D)
    sq_dists = torch.pdist(fx, p=2).pow(2)  # (P,), P = n(n-1)/2 distinct pairs
    # log mean exp(v) = logsumexp(v) - log P: exp(-t d^2) can underflow for large t, the log can't.
    return (torch.logsumexp(-t * sq_dists, dim=0) - math.log(sq_dists.numel())).item()
