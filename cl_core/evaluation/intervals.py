"""Intervals for the headline metrics: the percentile bootstrap over the evaluated units (the test
images of kNN top-1, the users of NDCG@10, the sentence pairs of STS Spearman), seeded, so that
a model scored twice gets the same interval (Efron & Tibshirani 1993, "An Introduction to the
Bootstrap", ch. 13).

A metric that is a mean over units (kNN top-1 is the mean of per-image hits, NDCG@10 the mean of
per-user gains) goes through `mean_interval`; any other statistic of the units (a Spearman
correlation over pairs) through `bootstrap_interval`, which recomputes it on each resample. Both
draw the same resamples for the same seed, so they agree on a mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
_CHUNK = 100  # resamples drawn at once by `mean_interval`: (100, units) indices in memory


@dataclass(frozen=True)
class Interval:
    """[low, high] at confidence `level`."""

    low: float
    high: float
    level: float = LEVEL

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"[{self.low:.4f}, {self.high:.4f}]"


def _check(units: int, resamples: int, level: float) -> None:
    if units < 1:
        raise ValueError(f"an interval needs at least one evaluated unit, got {units}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")


def _percentiles(estimates: np.ndarray, level: float) -> Interval:
    tail = (1 - level) / 2
    low, high = np.quantile(estimates, [tail, 1 - tail])
    return Interval(float(low), float(high), level)


def bootstrap_interval(statistic: Callable[[np.ndarray], float], units: int, *, resamples: int = RESAMPLES,
                       level: float = LEVEL, seed: int = SEED) -> Interval:
    """The percentile interval of `statistic(indices)` over `resamples` resamples of the
    indices 0..units-1, each drawn with replacement; `statistic` gets an (units,) int64 array."""
    _check(units, resamples, level)
    rng = np.random.default_rng(seed)
    estimates = np.array([statistic(rng.integers(0, units, size=units)) for _ in range(resamples)], dtype=np.float64)
    return _percentiles(estimates, level)


def mean_interval(values: ArrayLike, *, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = SEED) -> Interval:
    """The percentile interval of the mean of `values` (N,), one value per unit: the same
    resamples as `bootstrap_interval` with the mean as statistic, drawn `_CHUNK` at a time."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must be one per unit, (N,), got shape {values.shape}")
    _check(len(values), resamples, level)
    rng = np.random.default_rng(seed)
    estimates = []
    for start in range(0, resamples, _CHUNK):
        indices = rng.integers(0, len(values), size=(min(_CHUNK, resamples - start), len(values)))  # (c, N)
        estimates.append(values[indices].mean(axis=1))
    return _percentiles(np.concatenate(estimates), level)
