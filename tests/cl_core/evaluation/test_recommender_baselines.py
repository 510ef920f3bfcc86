"""recommender_baselines.py: most-popular ranks by training count (ties by index), BPR-MF is
deterministic for a seed and learns the clusters most-popular cannot see."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cl_core.evaluation.ranking import ranking_metrics
from cl_core.evaluation.recommender_baselines import BPRMF, MostPopular
from cl_core.recommender.synthetic import clustered_interactions

SYNTHETIC = clustered_interactions(num_users=120, num_items=60, clusters=4, per_user=10, seed=1)
TRAIN = (SYNTHETIC.train_users, SYNTHETIC.train_items)
TEST = (SYNTHETIC.test_users, SYNTHETIC.test_items)


def test_most_popular_ranks_items_by_count_then_index_for_every_user():
    popular = MostPopular(5).fit(np.array([0, 1, 2, 0, 1, 2]), np.array([3, 3, 1, 4, 1, 4]))
    scores = popular.scores(np.array([0, 2]))
    assert scores.shape == (2, 5) and torch.equal(scores[0], scores[1])
    assert torch.argsort(scores[0], descending=True).tolist() == [1, 3, 4, 0, 2]  # counts 2, 2, 2, then 0, 0


def _bpr(seed: int, epochs: int = 30) -> BPRMF:
    return BPRMF(120, 60, dim=16, epochs=epochs, lr=0.02, batch_size=256, seed=seed).fit(*TRAIN)


def test_bpr_mf_is_deterministic_for_a_seed():
    users = np.arange(10)
    first = _bpr(0, epochs=3).scores(users)
    assert torch.equal(_bpr(0, epochs=3).scores(users), first)
    assert not torch.equal(_bpr(1, epochs=3).scores(users), first)


def test_bpr_mf_beats_most_popular_on_clustered_interactions():
    mf = ranking_metrics(_bpr(0).scores, 120, 60, TRAIN, TEST)
    popular = ranking_metrics(MostPopular(60).fit(*TRAIN).scores, 120, 60, TRAIN, TEST)
    assert mf["ndcg_at_10"] > 2 * popular["ndcg_at_10"]
    assert mf["coverage_at_10"] > popular["coverage_at_10"]


def test_bpr_negatives_avoid_the_users_items():
    bpr = BPRMF(3, 4, dim=2, epochs=1)
    codes = np.sort(np.array([0 * 4 + 0, 0 * 4 + 1, 0 * 4 + 2, 1 * 4 + 3]))
    negatives = bpr._negatives(np.array([0] * 50 + [1] * 50), codes, np.random.default_rng(0))
    assert set(negatives[:50].tolist()) == {3} and 3 not in set(negatives[50:].tolist())


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="dim, epochs, batch_size must be >= 1"):
        BPRMF(3, 4, epochs=0)
