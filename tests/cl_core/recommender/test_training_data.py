"""history.py, training_data.py and synthetic.py: histories by hand, bad arrays refused naming
the array and row, the logQ of item popularity, and the synthetic set's shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cl_core.models.two_tower import PAD, SideFeatureSizes, TwoTowerSizes
from cl_core.recommender import EntityFeatures, InteractionsData, TowerInputs, interaction_histories
from cl_core.recommender.synthetic import clustered_interactions

# user 1: item 6 at t=1, items 4 and 5 both at t=3 (the tie goes to the lower item, 4);
# user 0: items 3 (t=1) then 2 (t=2); user 2: item 0; user 3: nothing.
USERS = np.array([1, 0, 1, 1, 0, 2])
ITEMS = np.array([5, 3, 4, 6, 2, 0])
TIMES = np.array([3, 1, 3, 1, 2, 9])


def test_histories_hold_only_earlier_items_in_time_order_ties_by_item():
    before, last = interaction_histories(USERS, ITEMS, TIMES, num_users=4, length=2)
    expected_before = [[6, 4], [PAD, PAD], [PAD, 6], [PAD, PAD], [PAD, 3], [PAD, PAD]]
    assert before.tolist() == expected_before  # in the input's row order
    assert last.tolist() == [[3, 2], [4, 5], [PAD, 0], [PAD, PAD]]
    longer, _ = interaction_histories(USERS, ITEMS, TIMES, num_users=4, length=3)
    assert longer[0].tolist() == [PAD, 6, 4]


def _data(**changes) -> InteractionsData:
    item_features = EntityFeatures(
        SideFeatureSizes(categorical=(2,), multi_valued=(3,), numeric=1),
        categorical=np.array([[0], [1], [1], [0], [0], [1], [0]]),
        multi_valued=(np.array([[0, PAD], [1, 2], [PAD, PAD], [2, PAD], [0, 1], [1, PAD], [0, PAD]]),),
        numeric=np.linspace(-1, 1, 7, dtype=np.float32)[:, None],
    )
    arguments = {"users": USERS, "items": ITEMS, "timestamps": TIMES, "num_users": 4, "num_items": 7,
                 "history_length": 2, "item_features": item_features, **changes}
    return InteractionsData.from_interactions(**arguments)


def test_the_data_describes_its_sizes_and_item_popularity():
    data = _data()
    assert len(data) == 6
    assert data.sizes == TwoTowerSizes(4, 7, SideFeatureSizes(), SideFeatureSizes((2,), (3,), 1))
    assert data.item_counts().tolist() == [1, 0, 1, 1, 1, 1, 1]
    np.testing.assert_allclose(data.item_log_q(), np.log(np.array([1, 1, 1, 1, 1, 1, 1]) / 6), rtol=1e-6)


def test_tower_inputs_give_each_interaction_its_own_history_and_each_user_its_last_items():
    inputs = TowerInputs(_data())
    users, items = inputs.interaction_batch(torch.tensor([0, 4]))
    assert users.user.tolist() == [1, 0] and users.history.tolist() == [[6, 4], [PAD, 3]]
    assert items.item.tolist() == [5, 2] and items.features.multi_valued[0].tolist() == [[1, PAD], [PAD, PAD]]
    assert items.features.categorical.tolist() == [[1], [1]] and items.features.numeric.dtype == torch.float32
    assert inputs.user_batch(torch.tensor([1, 3])).history.tolist() == [[4, 5], [PAD, PAD]]


@pytest.mark.parametrize("changes,match", [
    ({"users": np.array([1, 0, 1, 4, 0, 2])}, r"users\[3\] = 4 is not a valid index \(0..3\)"),
    ({"items": np.array([5, 3, 4, 6, 2, -1])}, r"items\[5\] = -1 is not a valid index \(0..6\)"),
    ({"items": ITEMS[:5]}, "users, items, timestamps must be"),
    ({"item_features": EntityFeatures(SideFeatureSizes(categorical=(2,)), categorical=np.array([[0]] * 6 + [[2]]))},
     r"item categorical column 0\[6\] = 2 is not a valid index \(0..1\)"),
    ({"item_features": EntityFeatures(SideFeatureSizes(multi_valued=(3,)), multi_valued=(np.full((7, 2), -2),))},
     r"item multi-valued column 0\[\(0, 0\)\] = -2 is not a valid index \(0..2 or -1 \(padding\)\)"),
    ({"item_features": EntityFeatures(SideFeatureSizes(numeric=1), numeric=np.array([[0.0]] * 3 + [[np.nan]] * 4))},
     "item numeric features hold a NaN or infinity in row 3"),
    ({"user_features": EntityFeatures(SideFeatureSizes(numeric=2), numeric=np.zeros((4, 1)))},
     r"user numeric features must be \(4, 2\)"),
])
def test_bad_arrays_are_refused_naming_the_array_and_row(changes, match):
    with pytest.raises(ValueError, match=match):
        _data(**changes)


def test_a_history_index_out_of_range_is_refused():
    data = _data()
    with pytest.raises(ValueError, match=r"history\[\(0, 1\)\] = 7"):
        InteractionsData(4, 7, data.users, data.items, np.where(data.history == 4, 7, data.history), data.user_history,
                         data.user_features, data.item_features)


def test_synthetic_users_mostly_pick_their_clusters_items_and_keep_their_last_for_test():
    synthetic = clustered_interactions(num_users=50, num_items=40, clusters=4, per_user=6, seed=2)
    assert len(synthetic.train_users) == 50 * 5 and synthetic.test_users.tolist() == list(range(50))
    same = synthetic.item_cluster[synthetic.train_items] == synthetic.user_cluster[synthetic.train_users]
    assert same.mean() > 0.75
    data = synthetic.training_data(history_length=3)
    assert data.sizes.item == SideFeatureSizes(multi_valued=(4,), numeric=1)
    # every user's serving history ends with its last training item, the one before its test item
    last_train = synthetic.train_items[synthetic.train_timestamps == 4]
    assert data.user_history[:, -1].tolist() == last_train.tolist()
    again = clustered_interactions(num_users=50, num_items=40, clusters=4, per_user=6, seed=2)
    assert np.array_equal(again.train_items, synthetic.train_items)
