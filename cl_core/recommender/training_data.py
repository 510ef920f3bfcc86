"""The training data of the two-tower recommender, as in-memory arrays: what the dataset layer
hands to `cl_core.tasks.interactions.InteractionsTask`, to the baselines and to evaluation.

Users and items are dense indices (0..num_users-1, 0..num_items-1): the mapping from the
source's ids is the dataset's. Arrays are numpy; they become torch tensors once, in the task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from cl_core.models.two_tower import PAD, ItemBatch, SideFeatureBatch, SideFeatureSizes, TwoTowerSizes, UserBatch
from cl_core.recommender.history import interaction_histories


def _check_indices(what: str, values: np.ndarray, size: int, pad: bool = False) -> None:
    """ValueError naming the first row (and column) whose index is outside 0..size-1 (or PAD)."""
    if values.dtype.kind not in "iu":
        raise ValueError(f"{what} must hold integer indices, got dtype {values.dtype}")
    below = (values < 0) & (values != PAD) if pad else values < 0
    bad = below | (values >= size)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        place = where[0] if len(where) == 1 else where
        allowed = f"0..{size - 1}" + (f" or {PAD} (padding)" if pad else "")
        raise ValueError(f"{what}[{place}] = {int(values[where])} is not a valid index ({allowed})")


@dataclass(frozen=True)
class EntityFeatures:
    """The side features of every user (or every item), row r for index r.

    categorical: (N, C) integers, column c in 0..sizes.categorical[c]-1 (the data side keeps a
        value for "missing" if it has one); None when C = 0.
    multi_valued: one (N, K_m) integer array per multi-valued column, values in
        0..sizes.multi_valued[m]-1, unused slots PAD (-1).
    numeric: (N, F) floats, already standardised (or bucketed into a categorical column by the
        data side); None when F = 0.
    """

    sizes: SideFeatureSizes = field(default_factory=SideFeatureSizes)
    categorical: np.ndarray | None = None
    multi_valued: tuple[np.ndarray, ...] = ()
    numeric: np.ndarray | None = None

    def check(self, rows: int, who: str) -> None:
        """ValueError naming the array, row and column of anything that does not fit `sizes`."""
        columns = len(self.sizes.categorical)
        if columns:
            if self.categorical is None or self.categorical.shape != (rows, columns):
                got = None if self.categorical is None else self.categorical.shape
                raise ValueError(f"{who} categorical features must be ({rows}, {columns}), got {got}")
            for c, size in enumerate(self.sizes.categorical):
                _check_indices(f"{who} categorical column {c}", self.categorical[:, c], size)
        elif self.categorical is not None and self.categorical.size:
            raise ValueError(f"{who} categorical features given, but sizes name no categorical column")
        if len(self.multi_valued) != len(self.sizes.multi_valued):
            raise ValueError(f"{who}: {len(self.multi_valued)} multi-valued arrays for {len(self.sizes.multi_valued)} columns")
        for m, (values, size) in enumerate(zip(self.multi_valued, self.sizes.multi_valued, strict=True)):
            if values.ndim != 2 or values.shape[0] != rows:
                raise ValueError(f"{who} multi-valued column {m} must be ({rows}, K), got {values.shape}")
            _check_indices(f"{who} multi-valued column {m}", values, size, pad=True)
        if self.sizes.numeric:
            if self.numeric is None or self.numeric.shape != (rows, self.sizes.numeric):
                got = None if self.numeric is None else self.numeric.shape
                raise ValueError(f"{who} numeric features must be ({rows}, {self.sizes.numeric}), got {got}")
            if not np.isfinite(self.numeric).all():
                row = int(np.argwhere(~np.isfinite(self.numeric))[0][0])
                raise ValueError(f"{who} numeric features hold a NaN or infinity in row {row}")
        elif self.numeric is not None and self.numeric.size:
            raise ValueError(f"{who} numeric features given, but sizes name no numeric column")

    def tensors(self) -> SideFeatureBatch:
        """All rows as tensors (long indices, float32 numbers), to `take` batches from."""
        return SideFeatureBatch(
            None if not self.sizes.categorical else torch.as_tensor(self.categorical, dtype=torch.long),
            tuple(torch.as_tensor(values, dtype=torch.long) for values in self.multi_valued),
            None if not self.sizes.numeric else torch.as_tensor(self.numeric, dtype=torch.float32),
        )


@dataclass(frozen=True)
class InteractionsData:
    """The training interactions and everything the towers read about users and items.

    users, items: (N,) integer indices, one row per training interaction (the positive pairs).
    history: (N, L) item indices, row n the items user n interacted with before interaction n,
        PAD-filled (`interaction_histories`; `from_interactions` builds it).
    user_history: (num_users, L) each user's last L training items: its history when the model
        is scored on the split after them (val; the test pass and serving add the val item:
        `cl_core.recommender.dataset.SEEN_SPLITS`).
    user_features: num_users rows; item_features: num_items rows (`EntityFeatures`).

    Every array is checked on construction; a bad one raises ValueError naming it and its row.
    """

    num_users: int
    num_items: int
    users: np.ndarray
    items: np.ndarray
    history: np.ndarray
    user_history: np.ndarray
    user_features: EntityFeatures = field(default_factory=EntityFeatures)
    item_features: EntityFeatures = field(default_factory=EntityFeatures)

    def __post_init__(self) -> None:
        TwoTowerSizes(self.num_users, self.num_items)  # checks the counts
        if self.users.ndim != 1 or self.users.shape != self.items.shape:
            raise ValueError(f"users and items must be (N,) alike, got {self.users.shape} and {self.items.shape}")
        if len(self.users) == 0:
            raise ValueError("no training interactions")
        _check_indices("users", self.users, self.num_users)
        _check_indices("items", self.items, self.num_items)
        if self.history.ndim != 2 or self.history.shape[0] != len(self.users):
            raise ValueError(f"history must be ({len(self.users)}, L), got {self.history.shape}")
        if self.user_history.shape != (self.num_users, self.history.shape[1]):
            raise ValueError(f"user_history must be ({self.num_users}, {self.history.shape[1]}), got {self.user_history.shape}")
        _check_indices("history", self.history, self.num_items, pad=True)
        _check_indices("user_history", self.user_history, self.num_items, pad=True)
        self.user_features.check(self.num_users, "user")
        self.item_features.check(self.num_items, "item")

    @classmethod
    def from_interactions(
        cls,
        users: np.ndarray,
        items: np.ndarray,
        timestamps: np.ndarray,
        num_users: int,
        num_items: int,
        history_length: int,
        user_features: EntityFeatures | None = None,
        item_features: EntityFeatures | None = None,
    ) -> InteractionsData:
        """The data of N training interactions (users, items, timestamps: (N,)), with the
        histories of `history_length` items built from their time order."""
        users, items = np.asarray(users), np.asarray(items)
        _check_indices("users", users, num_users)  # before the histories index by them
        _check_indices("items", items, num_items)
        users, items = users.astype(np.int64), items.astype(np.int64)
        before, last = interaction_histories(users, items, timestamps, num_users, history_length)
        return cls(
            num_users, num_items, users, items, before, last,
            user_features or EntityFeatures(), item_features or EntityFeatures(),
        )

    def __len__(self) -> int:
        return len(self.users)

    @property
    def sizes(self) -> TwoTowerSizes:
        return TwoTowerSizes(self.num_users, self.num_items, self.user_features.sizes, self.item_features.sizes)

    def item_counts(self) -> np.ndarray:
        """(num_items,) training interactions per item."""
        return np.bincount(self.items, minlength=self.num_items)

    def item_log_q(self) -> np.ndarray:
        """(num_items,) float32 log of the probability that an item fills a row of a uniformly
        drawn batch: its share of the training interactions (the logQ correction's q). An item
        without interactions is never in a batch; it gets the value of one interaction, to stay
        finite."""
        counts = np.maximum(self.item_counts(), 1)
        return np.log(counts / len(self.items)).astype(np.float32)

    def seen_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) of the training interactions: the items evaluation excludes."""
        return self.users, self.items


class TowerInputs:
    """`InteractionsData` as tensors, for the towers: training batches by interaction row, and
    every user (with its last training items as history) or item, for vectors."""

    def __init__(self, data: InteractionsData) -> None:
        self.num_users, self.num_items = data.num_users, data.num_items
        self.users = torch.as_tensor(data.users, dtype=torch.long)
        self.items = torch.as_tensor(data.items, dtype=torch.long)
        self.history = torch.as_tensor(data.history, dtype=torch.long)
        self.user_history = torch.as_tensor(data.user_history, dtype=torch.long)
        self.user_features = data.user_features.tensors()
        self.item_features = data.item_features.tensors()
        self.log_q = torch.as_tensor(data.item_log_q())

    def interaction_batch(self, rows: torch.Tensor) -> tuple[UserBatch, ItemBatch]:
        """The users (with each interaction's own history) and items of interaction `rows` (B,)."""
        users, items = self.users[rows], self.items[rows]
        return UserBatch(users, self.history[rows], self.user_features.take(users)), self.item_batch(items)

    def user_batch(self, users: torch.Tensor) -> UserBatch:
        """Users (B,) with their last training items as history (`user_history`)."""
        return UserBatch(users, self.user_history[users], self.user_features.take(users))

    def item_batch(self, items: torch.Tensor) -> ItemBatch:
        return ItemBatch(items, self.item_features.take(items))
