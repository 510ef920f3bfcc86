"""Users' recent items, the history the user tower averages (`cl_core.models.two_tower`).

A training interaction must see only what came before it: were its own item in the history,
the model would learn to copy the history instead of predicting the next item, and at serving
time (the test item is never in the history) that shortcut is gone.
"""

from __future__ import annotations

import numpy as np

from cl_core.models.two_tower import PAD


def interaction_histories(
    users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, num_users: int, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """The histories of N interactions and of every user, from each user's interactions in time
    order (ties broken by item index, as the splits break them).

    Args:
        users, items: (N,) integer indices; timestamps: (N,) numbers.
        num_users: users are 0..num_users-1 (a user without interactions gets an empty history).
        length: L, the most recent items kept.

    Returns:
        before: (N, L) int64, row n the (up to) L items its user interacted with before
            interaction n, oldest first, right-aligned (PAD on the left), in the input order.
        last: (num_users, L) int64, each user's last L items: its history after all of them,
            which is what the model sees when it recommends to the user.
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    timestamps = np.asarray(timestamps)
    if not users.shape == items.shape == timestamps.shape or users.ndim != 1:
        raise ValueError(f"users, items, timestamps must be (N,) alike, got {users.shape}, {items.shape}, {timestamps.shape}")
    if length < 1:
        raise ValueError(f"history length must be >= 1, got {length}")
    order = np.lexsort((items, timestamps, users))  # by user, then time, then item
    sorted_users, sorted_items = users[order], items[order]
    count = len(order)
    # Where each user's run starts in the sorted order, and each interaction's place in its run.
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]]) if count else np.zeros(0, np.int64)
    run_start = np.repeat(starts, np.diff(np.r_[starts, count]))
    position = np.arange(count) - run_start

    before_sorted = np.full((count, length), PAD, dtype=np.int64)
    for back in range(1, length + 1):
        has = position >= back
        before_sorted[has, length - back] = sorted_items[np.flatnonzero(has) - back]
    before = np.empty_like(before_sorted)
    before[order] = before_sorted

    last = np.full((num_users, length), PAD, dtype=np.int64)
    ends = np.r_[starts[1:], count] if count else np.zeros(0, np.int64)
    run_users = sorted_users[starts] if count else np.zeros(0, np.int64)
    for back in range(1, length + 1):
        has = ends - back >= starts
        last[run_users[has], length - back] = sorted_items[ends[has] - back]
    return before, last
