"""Bootstrap intervals of the headline metrics: reproducible for a seed, around the point value,
as wide as the sampling error says."""

import math

import numpy as np
import pytest

from cl_core.evaluation.intervals import Interval, bootstrap_interval, mean_interval
from cl_core.evaluation.sts import average_ranks


def _hits(n: int, rate: float, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < rate).astype(np.float64)


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    hits = _hits(192, 0.9)  # digits' test split: one image is half a point
    assert mean_interval(hits, seed=3) == mean_interval(hits, seed=3)
    assert mean_interval(hits, seed=3) != mean_interval(hits, seed=4)


@pytest.mark.parametrize("rate", [0.5, 0.9, 0.99])
def test_the_interval_covers_the_point_value(rate):
    hits = _hits(500, rate)
    assert hits.mean() in mean_interval(hits)


def test_a_mean_of_hits_matches_the_normal_approximation():
    hits = _hits(2000, 0.9)
    p, n = hits.mean(), len(hits)
    half_width = 1.959964 * math.sqrt(p * (1 - p) / n)  # ~0.013 at n=2000
    interval = mean_interval(hits)
    assert interval.low == pytest.approx(p - half_width, abs=0.003)
    assert interval.high == pytest.approx(p + half_width, abs=0.003)


def test_more_units_give_a_narrower_interval():
    small, large = mean_interval(_hits(200, 0.8)), mean_interval(_hits(5000, 0.8))
    assert large.high - large.low < (small.high - small.low) / 3  # sqrt(25) = 5 in theory


def test_constant_values_give_a_point():
    assert mean_interval(np.full(50, 0.25)) == Interval(0.25, 0.25)


def test_a_mean_through_the_generic_path_is_the_same_interval():
    values = np.random.default_rng(2).random(300)
    generic = bootstrap_interval(lambda indices: values[indices].mean(), len(values), resamples=250, seed=7)
    means = mean_interval(values, resamples=250, seed=7)
    assert (generic.low, generic.high) == pytest.approx((means.low, means.high), abs=1e-12)


def test_a_correlation_over_pairs_is_resampled_by_pair():
    rng = np.random.default_rng(5)
    gold = rng.random(400)
    predicted = gold + rng.normal(scale=0.3, size=400)

    def spearman(indices: np.ndarray) -> float:
        return float(np.corrcoef(average_ranks(gold[indices]), average_ranks(predicted[indices]))[0, 1])

    point = spearman(np.arange(400))
    interval = bootstrap_interval(spearman, 400, resamples=300)
    assert point in interval and 0.02 < interval.high - interval.low < 0.2


@pytest.mark.parametrize("call, message", [
    (lambda: mean_interval([]), "at least one evaluated unit"),
    (lambda: mean_interval([[1.0, 0.0]]), "one per unit"),
    (lambda: mean_interval([1.0], resamples=0), "resamples must be >= 1"),
    (lambda: bootstrap_interval(np.mean, 10, level=1.0), "level must lie strictly between 0 and 1"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_an_interval_reads_as_two_values():
    assert str(Interval(0.91234, 0.95678)) == "[0.9123, 0.9568]"
