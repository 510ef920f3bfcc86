import math

import numpy as np
import pytest
import torch
from scipy import stats

from cl_core.evaluation import sts_correlation
from cl_core.evaluation.sts import average_ranks


def hand_built_case():
    """Five pairs: the first sentence is always (1, 0), the second a unit vector chosen so the
    cosines are exactly 0.8, 0.6, 0, -0.6, 0.6 (a tie), against gold 5, 4, 2, 2, 3 (a tie)."""
    first = np.tile([1.0, 0.0], (5, 1))
    second = np.array([[0.8, 0.6], [0.6, 0.8], [0.0, 1.0], [-0.6, 0.8], [0.6, -0.8]])
    gold = np.array([5.0, 4.0, 2.0, 2.0, 3.0])
    return first, second, gold


def test_exact_values_on_hand_built_case_with_ties():
    first, second, gold = hand_built_case()
    # Average ranks: cosines -> [5, 3.5, 2, 1, 3.5], gold -> [5, 4, 1.5, 1.5, 3]; both have mean 3,
    # deviations [2, .5, -1, -2, .5] and [2, 1, -1.5, -1.5, 0]: sum of products 9, of squares 9.5 each.
    spearman = 9.0 / 9.5
    # Pearson on the raw values: means 0.28 and 3.2, sum of products of deviations 2.52, sums of
    # squared deviations 1.328 (cosines) and 6.8 (gold).
    pearson = 2.52 / math.sqrt(1.328 * 6.8)
    got = sts_correlation(first, second, gold)
    assert set(got) == {"spearman", "pearson"}
    assert got["spearman"] == pytest.approx(spearman, abs=1e-12)
    assert got["pearson"] == pytest.approx(pearson, abs=1e-12)
    assert isinstance(got["spearman"], float) and isinstance(got["pearson"], float)


def test_average_ranks_share_tied_positions():
    assert average_ranks(np.array([10.0, 20.0, 20.0, 30.0])).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert average_ranks(np.array([3.0, 1.0, 3.0, 3.0, 0.0])).tolist() == [4.0, 2.0, 4.0, 4.0, 1.0]


@pytest.mark.parametrize("n,dim,seed", [(2, 3, 0), (17, 8, 1), (200, 32, 2)])
def test_matches_scipy_including_ties(n, dim, seed):
    rng = np.random.default_rng(seed)
    first, second = rng.normal(size=(n, dim)), rng.normal(size=(n, dim))
    gold = rng.integers(0, 6, size=n).astype(float)  # STS-B-like 0..5 with many ties
    gold[:2] = [0.0, 5.0]  # never constant
    cosines = (first * second).sum(1) / np.linalg.norm(first, axis=1) / np.linalg.norm(second, axis=1)
    got = sts_correlation(first, second, gold)
    assert got["spearman"] == pytest.approx(stats.spearmanr(cosines, gold).statistic, abs=1e-10)
    assert got["pearson"] == pytest.approx(stats.pearsonr(cosines, gold).statistic, abs=1e-10)


def test_invariant_to_embedding_scale_and_monotone_gold_rescaling():
    rng = np.random.default_rng(3)
    first, second, gold = rng.normal(size=(30, 6)), rng.normal(size=(30, 6)), rng.uniform(0, 5, size=30)
    base = sts_correlation(first, second, gold)
    row_scales = rng.uniform(0.1, 10.0, size=(30, 1))
    scaled = sts_correlation(first * row_scales, 3.0 * second, 20.0 * gold + 7.0)
    assert scaled["spearman"] == pytest.approx(base["spearman"], abs=1e-12)
    assert scaled["pearson"] == pytest.approx(base["pearson"], abs=1e-12)
    # Spearman only sees ranks, so any increasing transform of gold leaves it unchanged.
    assert sts_correlation(first, second, np.exp(gold))["spearman"] == pytest.approx(base["spearman"], abs=1e-12)
    flipped = sts_correlation(first, second, -gold)
    assert flipped["spearman"] == pytest.approx(-base["spearman"], abs=1e-12)


def test_accepts_torch_tensors_in_any_float_dtype():
    first, second, gold = hand_built_case()
    expected = sts_correlation(first, second, gold)
    got = sts_correlation(torch.tensor(first, dtype=torch.bfloat16), torch.tensor(second), torch.tensor(gold))
    assert got["spearman"] == pytest.approx(expected["spearman"], abs=1e-12)  # exact in bf16


def test_perfect_and_collapsed_embeddings():
    first, second, gold = hand_built_case()
    cosines = (first * second).sum(1)
    assert sts_correlation(first, second, cosines) == pytest.approx({"spearman": 1.0, "pearson": 1.0})
    collapsed = sts_correlation(first, first, gold)  # every cosine is 1: no ranking information
    assert collapsed == {"spearman": 0.0, "pearson": 0.0}


def test_rejects_bad_inputs():
    first, second, gold = hand_built_case()
    with pytest.raises(ValueError, match="embeddings1 and embeddings2"):
        sts_correlation(first, second[:4], gold)
    with pytest.raises(ValueError, match="embeddings1 and embeddings2"):
        sts_correlation(first[:, 0], second[:, 0], gold)
    with pytest.raises(ValueError, match="gold must be"):
        sts_correlation(first, second, gold[:4])
    with pytest.raises(ValueError, match="at least 2"):
        sts_correlation(first[:1], second[:1], gold[:1])
    with pytest.raises(ValueError, match="all equal"):
        sts_correlation(first, second, np.full(5, 3.0))
    with pytest.raises(ValueError, match="finite"):
        sts_correlation(first, second, np.array([1.0, 2.0, np.nan, 3.0, 4.0]))
