"""Synthetic interactions with a structure a recommender can learn and most-popular cannot:
users and items fall into clusters, and a user picks mostly items of its own cluster, the
popular ones more often. For tests and small end-to-end runs; no real data involved."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cl_core.models.two_tower import PAD, SideFeatureSizes
from cl_core.recommender.training_data import EntityFeatures, InteractionsData


@dataclass(frozen=True)
class SyntheticInteractions:
    """Every user's interactions in time order, split leave-last-one-out: the last one is the
    test interaction, the others train. Side features: users have a noisy "segment" (their
    cluster 70 % of the time; categorical) and a standardised number; items have genres (their
    cluster and maybe one more; multi-valued) and a standardised "year"."""

    num_users: int
    num_items: int
    train_users: np.ndarray  # (N,)
    train_items: np.ndarray  # (N,)
    train_timestamps: np.ndarray  # (N,)
    test_users: np.ndarray  # (num_users,)
    test_items: np.ndarray  # (num_users,)
    user_features: EntityFeatures
    item_features: EntityFeatures
    user_cluster: np.ndarray  # (num_users,)
    item_cluster: np.ndarray  # (num_items,)

    def training_data(self, history_length: int) -> InteractionsData:
        return InteractionsData.from_interactions(
            self.train_users, self.train_items, self.train_timestamps, self.num_users, self.num_items,
            history_length, self.user_features, self.item_features,
        )

    def write_csv(self, folder: str | Path) -> dict[str, Path]:
        """The interactions as source files, as a user would bring them: `interactions.csv`
        (user, item, timestamp; every interaction, the test one last in time), `users.csv`
        (user_id, segment, score) and `items.csv` (item_id, title, genres "g1|g3", year). Ids
        are the indices as text, so user "3" and item "3" both exist. Returns {"interactions",
        "users", "items"} paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        users = np.concatenate([self.train_users, self.test_users])
        items = np.concatenate([self.train_items, self.test_items])
        times = np.concatenate([self.train_timestamps, np.full(self.num_users, self.train_timestamps.max() + 1)])
        order = np.lexsort((times, users))
        paths = {name: folder / f"{name}.csv" for name in ("interactions", "users", "items")}
        lines = ["user,item,timestamp", *(f"{users[i]},{items[i]},{int(times[i])}" for i in order)]
        paths["interactions"].write_text("\n".join(lines) + "\n", encoding="utf-8")
        segment, score = self.user_features.categorical[:, 0], self.user_features.numeric[:, 0]
        lines = ["user_id,segment,score", *(f"{u},s{segment[u]},{score[u]:.4f}" for u in range(self.num_users))]
        paths["users"].write_text("\n".join(lines) + "\n", encoding="utf-8")
        genres, year = self.item_features.multi_valued[0], self.item_features.numeric[:, 0]
        lines = ["item_id,title,genres,year"]
        for i in range(self.num_items):
            names = "|".join(f"g{g}" for g in genres[i] if g != PAD)
            lines.append(f"{i},Item {i} ({names}),{names},{1990 + 5 * year[i]:.1f}")
        paths["items"].write_text("\n".join(lines) + "\n", encoding="utf-8")
        return paths


def clustered_interactions(
    num_users: int = 200,
    num_items: int = 100,
    clusters: int = 5,
    per_user: int = 12,
    in_cluster: float = 0.9,
    seed: int = 0,
) -> SyntheticInteractions:
    """`per_user` distinct items for each user, drawn (in time order) with probability
    `in_cluster` from its cluster's items, else from all others, within each group in
    proportion to a Zipf-like popularity."""
    if not 2 <= per_user <= num_items // clusters:
        raise ValueError(f"per_user must be in [2, num_items // clusters = {num_items // clusters}], got {per_user}")
    rng = np.random.default_rng(seed)
    item_cluster = rng.permutation(np.arange(num_items) % clusters)
    popularity = 1.0 / (rng.permutation(num_items) + 1.0) ** 0.8
    user_cluster = rng.integers(0, clusters, num_users)

    users, items = [], []
    for user, cluster in enumerate(user_cluster):
        mine = item_cluster == cluster
        weights = np.where(mine, in_cluster * popularity / popularity[mine].sum(),
                           (1 - in_cluster) * popularity / popularity[~mine].sum())
        items.append(rng.choice(num_items, size=per_user, replace=False, p=weights / weights.sum()))
        users.append(np.full(per_user, user))
    users_all, items_all = np.concatenate(users), np.concatenate(items)
    timestamps = np.tile(np.arange(per_user), num_users)
    last = timestamps == per_user - 1

    segment = np.where(rng.random(num_users) < 0.7, user_cluster, rng.integers(0, clusters, num_users))
    second_genre = np.where(rng.random(num_items) < 0.5, rng.integers(0, clusters, num_items), PAD)
    second_genre[second_genre == item_cluster] = PAD
    user_features = EntityFeatures(
        SideFeatureSizes(categorical=(clusters,), numeric=1),
        categorical=segment[:, None].astype(np.int64),
        numeric=rng.standard_normal((num_users, 1)).astype(np.float32),
    )
    item_features = EntityFeatures(
        SideFeatureSizes(multi_valued=(clusters,), numeric=1),
        multi_valued=(np.stack([item_cluster, second_genre], axis=1).astype(np.int64),),
        numeric=rng.standard_normal((num_items, 1)).astype(np.float32),
    )
    return SyntheticInteractions(
        num_users, num_items, users_all[~last], items_all[~last], timestamps[~last], users_all[last], items_all[last],
        user_features, item_features, user_cluster, item_cluster,
    )
