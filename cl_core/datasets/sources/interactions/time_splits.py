"""Split interactions by time: leave-last-out per user, or one global cutoff.

Pure numpy on integer-coded rows, so that the rule is tested on its own. Each function returns
one split code per row: an index into `cl_core.datasets.records.SPLITS` (0 train, 1 val, 2 test).
"""

from __future__ import annotations

import numpy as np

from cl_core.config import InteractionSplitSpec

TRAIN, VAL, TEST = 0, 1, 2


def leave_last_out(users: np.ndarray, timestamps: np.ndarray, item_ranks: np.ndarray) -> np.ndarray:
    """Per user, ordered by (timestamp, item id): the last interaction is test, the one before it
    val, the rest train. A user with two interactions has a test one and no val one; a user with
    a single interaction keeps it in train (there is nothing to learn them from otherwise).

    Args:
        users: int (N,) the user of each row (any integer code).
        timestamps: float (N,) when.
        item_ranks: int (N,) the item's place in id order (`id_order.sorted_ids`): equal
            timestamps are ordered by it, so the largest item id among a user's last ties is test.

    Returns:
        int8 (N,) split codes, in the rows' order.
    """
    count = len(users)
    codes = np.full(count, TRAIN, dtype=np.int8)
    if count == 0:
        return codes
    order = np.lexsort((item_ranks, timestamps, users))  # by user, then time, then item
    grouped = users[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])  # (G,) first row of each user
    sizes = np.diff(np.r_[starts, count])  # (G,)
    size = np.repeat(sizes, sizes)  # (N,) the user's number of interactions, per sorted row
    from_end = np.repeat(starts + sizes, sizes) - 1 - np.arange(count)  # 0 = the user's last
    sorted_codes = np.where((from_end == 0) & (size >= 2), TEST, TRAIN)
    sorted_codes = np.where((from_end == 1) & (size >= 3), VAL, sorted_codes)
    codes[order] = sorted_codes
    return codes


def time_cutoff(timestamps: np.ndarray, test_from: float, val_from: float | None = None) -> np.ndarray:
    """One cutoff for everyone: timestamp >= test_from is test, val_from <= timestamp < test_from
    is val (none without `val_from`), the rest train.

    Args:
        timestamps: float (N,).

    Returns:
        int8 (N,) split codes.
    """
    if val_from is not None and val_from > test_from:
        raise ValueError(f"val_from {val_from} must be <= test_from {test_from}")
    codes = np.full(len(timestamps), TRAIN, dtype=np.int8)
    if val_from is not None:
        codes[timestamps >= val_from] = VAL
    codes[timestamps >= test_from] = TEST
    return codes


def split_codes(
    spec: InteractionSplitSpec, users: np.ndarray, timestamps: np.ndarray, item_ranks: np.ndarray
) -> np.ndarray:
    """The split code of each row under `spec` (see the two functions above)."""
    if spec.method == "leave_last_out":
        return leave_last_out(users, timestamps, item_ranks)
    return time_cutoff(timestamps, spec.test_from, spec.val_from)
