"""time_splits and id_order: the split rules on hand-made rows, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from cl_core.config import InteractionSplitSpec
from cl_core.datasets.records import SPLITS
from cl_core.datasets.sources.interactions.id_order import all_integers, sorted_ids
from cl_core.datasets.sources.interactions.time_splits import leave_last_out, split_codes, time_cutoff


def _names(codes):
    return [SPLITS[c] for c in codes]


def test_ids_are_numbered_as_numbers_when_all_are_integers():
    assert sorted_ids(["10", "9", "100", "9"]) == ["9", "10", "100"]
    assert sorted_ids(["-3", "0", "2"]) == ["-3", "0", "2"]
    # One id that is not a plain integer makes the whole kind string-ordered.
    assert sorted_ids(["10", "9", "b"]) == ["10", "9", "b"]
    assert sorted_ids(["010", "9"]) == ["010", "9"]  # a leading zero is not how str(int) writes it
    assert not all_integers(["+1"]) and not all_integers([" 1"]) and all_integers([])


def test_leave_last_out_with_ties_broken_by_item_id():
    # user 0: items ranked 3, 9, 20, 100 (by id); three of them at t=30: the largest item id is last.
    # user 1: two interactions: test and train, no val.  user 2: one: train.
    # user 3: the last two tie at t=5: item rank 8 is test, rank 4 val.
    users = np.array([0, 0, 0, 0, 1, 1, 2, 3, 3, 3])
    times = np.array([10, 30, 30, 30, 1, 2, 7, 5, 1, 5], dtype=float)
    items = np.array([3, 100, 9, 20, 5, 6, 1, 4, 2, 8])
    codes = leave_last_out(users, times, items)
    assert _names(codes) == [
        "train", "test", "train", "val",  # user 0: 3@10 9@30 20@30 100@30
        "train", "test",                  # user 1
        "train",                          # user 2
        "val", "train", "test",           # user 3: 2@1 4@5 8@5
    ]


def test_leave_two_out_split_counts():
    """Users with 1, 2, 3 and 5 interactions: one interaction stays in train (nothing to learn the
    user from otherwise); two give a train and a test one, no val; from three on, the last is
    test, the one before val, the rest train."""
    sizes = {"one": 1, "two": 2, "three": 3, "five": 5}
    users = np.repeat(np.arange(len(sizes)), list(sizes.values()))
    times = np.concatenate([np.arange(size, dtype=float) for size in sizes.values()])
    names = np.array(_names(leave_last_out(users, times, np.arange(len(users)))))
    counts = {who: {split: int(((users == u) & (names == split)).sum()) for split in SPLITS}
              for u, who in enumerate(sizes)}
    assert counts == {
        "one": {"train": 1, "val": 0, "test": 0},
        "two": {"train": 1, "val": 0, "test": 1},
        "three": {"train": 1, "val": 1, "test": 1},
        "five": {"train": 3, "val": 1, "test": 1},
    }
    assert {split: int((names == split).sum()) for split in SPLITS} == {"train": 6, "val": 2, "test": 3}


def test_leave_last_out_does_not_depend_on_row_order():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 20, 300)
    times = rng.integers(0, 15, 300).astype(float)  # many ties
    items = rng.permutation(300)  # distinct items, so (user, time, item) is a total order
    codes = leave_last_out(users, times, items)
    shuffle = rng.permutation(300)
    assert np.array_equal(leave_last_out(users[shuffle], times[shuffle], items[shuffle]), codes[shuffle])
    for user in np.unique(users):
        mine = np.flatnonzero(users == user)
        last = mine[np.lexsort((items[mine], times[mine]))]
        expected = ["train"] * len(last)
        if len(last) >= 2:
            expected[-1] = "test"
        if len(last) >= 3:
            expected[-2] = "val"
        assert _names(codes[last]) == expected


def test_leave_last_out_of_nothing():
    empty = np.array([], dtype=np.int64)
    assert len(leave_last_out(empty, empty.astype(float), empty)) == 0


def test_time_cutoff_is_global_and_inclusive_from_the_cutoff():
    times = np.array([1.0, 5.0, 9.99, 10.0, 15.0, 20.0])
    assert _names(time_cutoff(times, test_from=15.0, val_from=10.0)) == ["train", "train", "train", "val", "test", "test"]
    assert _names(time_cutoff(times, test_from=10.0)) == ["train", "train", "train", "test", "test", "test"]
    with pytest.raises(ValueError, match="val_from 3 must be <= test_from 2"):
        time_cutoff(times, test_from=2, val_from=3)


def test_split_codes_follows_the_spec():
    users, times, items = np.array([0, 0, 0]), np.array([1.0, 2.0, 3.0]), np.array([0, 1, 2])
    assert _names(split_codes(InteractionSplitSpec(), users, times, items)) == ["train", "val", "test"]
    cutoff = InteractionSplitSpec(method="time_cutoff", test_from=3, val_from=2)
    assert _names(split_codes(cutoff, users, times, items)) == ["train", "val", "test"]
