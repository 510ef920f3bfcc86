"""ranking.py: recall@k, NDCG@k, MRR and coverage@k against values computed by hand, and each
user's values (what an interval resamples), whose mean is the metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cl_core.evaluation.ranking import UserItems, rank_users, ranking_metrics, ranking_metrics_from_top_k

# 3 users, 6 items. Training: user 0 has items 0 and 1, user 1 item 2, user 2 item 5.
# Test: user 0 item 3; user 1 items 0 and 4; user 2 item 5 (also in its training: kept).
TRAIN = (np.array([0, 0, 1, 2]), np.array([0, 1, 2, 5]))
TEST = (np.array([0, 1, 1, 2]), np.array([3, 0, 4, 5]))
SCORES = torch.tensor([
    [9.0, 8.0, 1.0, 5.0, 7.0, 2.0],  # candidates 4 (7) > 3 (5) > 5 > 2: target 3 at rank 2
    [3.0, 1.0, 9.0, 6.0, 6.0, 0.0],  # 2 excluded; 3 and 4 tie at 6: target 4 at rank 2, target 0 at 3
    [6.0, 5.0, 4.0, 3.0, 2.0, 1.0],  # target 5 last of 6
])
D2, D3 = 1 / math.log2(3), 1 / math.log2(4)  # discounts of ranks 2 and 3


def _scores(users: np.ndarray) -> torch.Tensor:
    return SCORES[torch.as_tensor(users)]


def test_metrics_from_scores_equal_the_hand_computed_values():
    got = ranking_metrics(_scores, 3, 6, TRAIN, TEST, ks=(2, 5))
    expected = {
        "recall_at_2": (1 + 0.5 + 0) / 3,
        "ndcg_at_2": (D2 + D2 / (1 + D2) + 0) / 3,
        "recall_at_5": (1 + 1 + 0) / 3,
        "ndcg_at_5": (D2 + (D2 + D3) / (1 + D2) + 0) / 3,
        "mrr": (1 / 2 + 1 / 2 + 1 / 6) / 3,
        "coverage_at_2": 4 / 6,  # {4, 3} + {3, 4} + {0, 1}
        "coverage_at_5": 6 / 6,
        "users": 3.0,
    }
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_each_users_values_are_the_hand_computed_ones():
    ranking = rank_users(_scores, 3, 6, TRAIN, TEST, ks=(2, 5))
    assert ranking.users.tolist() == [0, 1, 2]
    np.testing.assert_allclose(ranking.per_user["ndcg_at_5"], [D2, (D2 + D3) / (1 + D2), 0.0], atol=1e-12)
    np.testing.assert_allclose(ranking.per_user["mrr"], [1 / 2, 1 / 2, 1 / 6], atol=1e-12)
    assert ranking.metrics == ranking_metrics(_scores, 3, 6, TRAIN, TEST, ks=(2, 5))


def test_per_user_ndcg_at_10_averages_to_the_summed_metric():
    rng = np.random.default_rng(0)
    num_users, num_items = 50, 40
    train = (rng.integers(0, num_users, 300), rng.integers(0, num_items, 300))
    test = (rng.integers(0, num_users, 80), rng.integers(0, num_items, 80))  # some users hold out two items
    scores = torch.as_tensor(rng.standard_normal((num_users, num_items)))
    ranking = rank_users(lambda users: scores[torch.as_tensor(users)], num_users, num_items, train, test, batch_size=7)
    assert ranking.users.tolist() == np.unique(test[0]).tolist()
    assert len(ranking.per_user["ndcg_at_10"]) == ranking.metrics["users"]
    assert ranking.per_user["ndcg_at_10"].mean() == pytest.approx(ranking.metrics["ndcg_at_10"], abs=1e-12)
    assert ranking.metrics["ndcg_at_10"] == pytest.approx(
        ranking_metrics(lambda users: scores[torch.as_tensor(users)], num_users, num_items, train, test)["ndcg_at_10"],
        abs=1e-12)


def test_users_are_scored_in_batches_with_the_same_result():
    assert ranking_metrics(_scores, 3, 6, TRAIN, TEST, ks=(2, 5), batch_size=1) == ranking_metrics(
        _scores, 3, 6, TRAIN, TEST, ks=(2, 5))


def test_a_constant_scorer_gets_no_credit_for_ties():
    got = ranking_metrics(lambda users: torch.zeros(len(users), 6), 3, 6, TRAIN, TEST, ks=(1,))
    # every target ranks last among the user's candidates: 4, 5 (both targets of user 1) and 6
    assert got["recall_at_1"] == 0.0 and got["mrr"] == pytest.approx((1 / 4 + 1 / 5 + 1 / 6) / 3)


def test_only_users_with_test_items_count():
    got = ranking_metrics(_scores, 3, 6, TRAIN, (np.array([0]), np.array([3])), ks=(2,))
    assert got["users"] == 1.0 and got["recall_at_2"] == 1.0 and got["mrr"] == 0.5 and got["coverage_at_2"] == 2 / 6


def test_metrics_from_top_k_lists_cut_the_reciprocal_rank_at_the_list_length():
    top = np.array([[4, 3, 5], [3, 4, 0], [0, 1, 2]])
    got = ranking_metrics_from_top_k(top, np.array([0, 1, 2]), 3, 6, TEST, ks=(2, 3))
    expected = {
        "recall_at_2": (1 + 0.5 + 0) / 3, "ndcg_at_2": (D2 + D2 / (1 + D2)) / 3,
        "recall_at_3": (1 + 1 + 0) / 3, "ndcg_at_3": (D2 + (D2 + D3) / (1 + D2)) / 3,
        "mrr_at_3": (1 / 2 + 1 / 2 + 0) / 3, "coverage_at_2": 4 / 6, "coverage_at_3": 1.0, "users": 3.0,
    }
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_bad_inputs_are_refused_with_a_message():
    with pytest.raises(ValueError, match="ks must be cut-offs >= 1"):
        ranking_metrics(_scores, 3, 6, TRAIN, TEST, ks=(0,))
    with pytest.raises(ValueError, match=r"scores of shape \(3, 5\)"):
        ranking_metrics(lambda users: torch.zeros(len(users), 5), 3, 6, TRAIN, TEST)
    with pytest.raises(ValueError, match="NaN or infinite score to user 1"):
        ranking_metrics(lambda users: torch.tensor([[0.0] * 6, [math.nan] * 6, [0.0] * 6])[users], 3, 6, TRAIN, TEST)
    with pytest.raises(ValueError, match=r"items must be indices in 0..5"):
        ranking_metrics(_scores, 3, 6, TRAIN, (np.array([0]), np.array([6])))
    with pytest.raises(ValueError, match="user 2 has test items but no top-k list"):
        ranking_metrics_from_top_k(np.array([[4, 3], [3, 4]]), np.array([0, 1]), 3, 6, TEST, ks=(2,))
    with pytest.raises(ValueError, match="longer than the lists"):
        ranking_metrics_from_top_k(np.array([[4], [3], [0]]), np.array([0, 1, 2]), 3, 6, TEST, ks=(2,))


def test_user_items_masks_each_users_items():
    pairs = UserItems(*TRAIN, num_users=3, num_items=6)
    assert pairs.mask(np.array([2, 0])).nonzero().tolist() == [[0, 5], [1, 0], [1, 1]]
