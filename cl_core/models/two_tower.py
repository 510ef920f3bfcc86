"""A two-tower recommender (Covington et al. 2016, "Deep Neural Networks for YouTube
Recommendations"; Yi et al. 2019): a user tower and an item tower, each an MLP over embeddings,
scoring a (user, item) pair by the dot product of their outputs.

User tower input: the user's id embedding, the mean of the embeddings of the user's recent
items (its history; the item id embedding table is shared with the item tower) and the user's
side features. Item tower input: the item's id embedding and its side features. Side features
are single-valued categorical columns (one embedding each), multi-valued categorical columns
such as genres (the mean of their values' embeddings) and numeric columns (as given: the data
side standardises them, or buckets them into a categorical column, e.g. a release year).

Both towers end in L2 normalisation: a score u . v is a cosine similarity in [-1, 1]; training
divides it by a temperature (`cl_core.losses.sampled_softmax`), ranking uses it as is. The
vectors exported and searched are these normalised outputs.

What the data looks like is described by `TwoTowerSizes` (counts and cardinalities) and passed
as `UserBatch` / `ItemBatch` of index tensors, so the model knows nothing of the source format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PAD = -1  # fills the unused slots of a history or of a multi-valued feature


@dataclass(frozen=True)
class SideFeatureSizes:
    """The side features of users (or items): the cardinality of each single-valued categorical
    column (values 0..c-1), of each multi-valued one, and the number of numeric columns."""

    categorical: tuple[int, ...] = ()
    multi_valued: tuple[int, ...] = ()
    numeric: int = 0

    def __post_init__(self) -> None:
        # Lists come back from JSON; tuples keep the sizes hashable.
        object.__setattr__(self, "categorical", tuple(int(c) for c in self.categorical))
        object.__setattr__(self, "multi_valued", tuple(int(c) for c in self.multi_valued))
        for name in ("categorical", "multi_valued"):
            bad = [c for c in getattr(self, name) if c < 1]
            if bad:
                raise ValueError(f"{name} cardinalities must be >= 1, got {getattr(self, name)}")
        if self.numeric < 0:
            raise ValueError(f"numeric must be >= 0 columns, got {self.numeric}")

    def to_dict(self) -> dict[str, Any]:
        return {"categorical": list(self.categorical), "multi_valued": list(self.multi_valued), "numeric": self.numeric}

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any]) -> SideFeatureSizes:
        return cls(**meta)


@dataclass(frozen=True)
class TwoTowerSizes:
    """How many users and items there are (indices 0..n-1) and their side features."""

    num_users: int
    num_items: int
    user: SideFeatureSizes = field(default_factory=SideFeatureSizes)
    item: SideFeatureSizes = field(default_factory=SideFeatureSizes)

    def __post_init__(self) -> None:
        if isinstance(self.user, Mapping):
            object.__setattr__(self, "user", SideFeatureSizes.from_dict(self.user))
        if isinstance(self.item, Mapping):
            object.__setattr__(self, "item", SideFeatureSizes.from_dict(self.item))
        if self.num_users < 1 or self.num_items < 2:
            raise ValueError(f"need >= 1 user and >= 2 items, got {self.num_users} users and {self.num_items} items")

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_users": self.num_users, "num_items": self.num_items,
            "user": self.user.to_dict(), "item": self.item.to_dict(),
        }

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any]) -> TwoTowerSizes:
        return cls(**meta)


@dataclass(frozen=True)
class SideFeatureBatch:
    """Side features of B users or items: categorical (B, C) long, multi_valued one (B, K_m) long
    per multi-valued column (PAD in unused slots), numeric (B, N) float. A tensor is None (or,
    for multi_valued, the tuple empty) when there are no columns of its kind."""

    categorical: torch.Tensor | None = None
    multi_valued: tuple[torch.Tensor, ...] = ()
    numeric: torch.Tensor | None = None

    def take(self, index: torch.Tensor) -> SideFeatureBatch:
        """The rows `index` (B,) of these features (e.g. of every user, row = user index)."""
        return SideFeatureBatch(
            None if self.categorical is None else self.categorical[index],
            tuple(values[index] for values in self.multi_valued),
            None if self.numeric is None else self.numeric[index],
        )

    def to(self, device: torch.device) -> SideFeatureBatch:
        return SideFeatureBatch(
            None if self.categorical is None else self.categorical.to(device, non_blocking=True),
            tuple(values.to(device, non_blocking=True) for values in self.multi_valued),
            None if self.numeric is None else self.numeric.to(device, non_blocking=True),
        )


@dataclass(frozen=True)
class UserBatch:
    """B users: index (B,) long (PAD for a user unknown to the model, in eval mode), history (B, L)
    long item indices (PAD where the user has fewer than L earlier items; any order, the mean
    ignores it), and their side features."""

    user: torch.Tensor
    history: torch.Tensor
    features: SideFeatureBatch = field(default_factory=SideFeatureBatch)

    def to(self, device: torch.device) -> UserBatch:
        return UserBatch(self.user.to(device, non_blocking=True), self.history.to(device, non_blocking=True),
                         self.features.to(device))


@dataclass(frozen=True)
class ItemBatch:
    """B items: index (B,) long (PAD for an item unknown to the model, in eval mode) and their
    side features."""

    item: torch.Tensor
    features: SideFeatureBatch = field(default_factory=SideFeatureBatch)

    def to(self, device: torch.device) -> ItemBatch:
        return ItemBatch(self.item.to(device, non_blocking=True), self.features.to(device))


def id_embedding(table: nn.Embedding, index: torch.Tensor, cold_start: bool) -> torch.Tensor:
    """The rows of `index` (B,): (B, E). With `cold_start`, an index PAD (an id the model was not
    trained on, embedded from its history and side features alone) gets the table's mean row;
    training never passes PAD, and skips the check."""
    if not cold_start:
        return table(index)
    unknown = (index == PAD).unsqueeze(-1)  # (B, 1)
    return torch.where(unknown, table.weight.mean(dim=0), table(index.clamp(min=0)))


def masked_mean_embedding(table: nn.Embedding, indices: torch.Tensor) -> torch.Tensor:
    """Mean of the embeddings of `indices` (B, K), skipping PAD slots: (B, E); zeros for a row
    with no values."""
    present = indices != PAD  # (B, K)
    vectors = table(indices.clamp(min=0)) * present.unsqueeze(-1)  # (B, K, E)
    count = present.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1)
    return vectors.sum(dim=1) / count


class SideFeatureEncoder(nn.Module):
    """Side features -> (B, out_dim): one embedding per categorical value, the mean embedding of
    each multi-valued column, then the numeric columns, concatenated."""

    def __init__(self, sizes: SideFeatureSizes, feature_dim: int) -> None:
        super().__init__()
        self.sizes = sizes
        self.categorical = nn.ModuleList(nn.Embedding(c, feature_dim) for c in sizes.categorical)
        self.multi_valued = nn.ModuleList(nn.Embedding(c, feature_dim) for c in sizes.multi_valued)
        self.out_dim = feature_dim * (len(sizes.categorical) + len(sizes.multi_valued)) + sizes.numeric

    def forward(self, features: SideFeatureBatch, like: torch.Tensor) -> torch.Tensor:
        """features of B rows -> (B, out_dim), on the device and in the dtype of `like` (B, E),
        the rows' id embeddings."""
        batch = like.shape[0]
        parts = []
        if self.categorical:
            _check_columns("categorical", features.categorical, batch, len(self.categorical))
            parts += [table(features.categorical[:, c]) for c, table in enumerate(self.categorical)]
        if len(features.multi_valued) != len(self.multi_valued):
            raise ValueError(f"expected {len(self.multi_valued)} multi-valued columns, got {len(features.multi_valued)}")
        columns = zip(self.multi_valued, features.multi_valued, strict=True)
        parts += [masked_mean_embedding(table, values) for table, values in columns]
        if self.sizes.numeric:
            _check_columns("numeric", features.numeric, batch, self.sizes.numeric)
            parts.append(features.numeric.to(like.dtype))
        return torch.cat(parts, dim=1) if parts else like.new_zeros(batch, 0)


def _check_columns(name: str, values: torch.Tensor | None, batch: int, columns: int) -> None:
    if values is None or values.shape != (batch, columns):
        got = None if values is None else tuple(values.shape)
        raise ValueError(f"{name} side features must be ({batch}, {columns}), got {got}")


def tower_mlp(in_dim: int, hidden: Sequence[int], out_dim: int, dropout: float) -> nn.Sequential:
    """in_dim -> hidden... (ReLU, dropout) -> out_dim, no activation on the output."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU(), nn.Dropout(dropout)]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class TwoTowerModel(nn.Module):
    """User and item towers over `feature_dim`-wide embeddings, with outputs of dimension
    `embedding_dim`, L2-normalised.

    `forward(users, items)` embeds B (user, item) pairs in one call, so that DDP sees every
    parameter used in the call it wraps; `embed_users` / `embed_items` embed one side (serving,
    evaluation). In eval mode an index PAD stands for an id unknown to the model: its id
    embedding is the mean one (`id_embedding`), the rest comes from its history and features.
    A score is the dot product of the two normalised outputs (a cosine); the training loss
    divides it by its temperature.
    """

    def __init__(
        self, sizes: TwoTowerSizes, feature_dim: int = 64, hidden: Sequence[int] = (128,), embedding_dim: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.sizes = sizes
        self.embedding_dim = embedding_dim
        self.user_id = nn.Embedding(sizes.num_users, feature_dim)
        self.item_id = nn.Embedding(sizes.num_items, feature_dim)
        # Small initial embeddings: the default N(0, 1) would dominate the numeric features.
        for table in (self.user_id, self.item_id):
            nn.init.normal_(table.weight, std=0.1)
        self.user_features = SideFeatureEncoder(sizes.user, feature_dim)
        self.item_features = SideFeatureEncoder(sizes.item, feature_dim)
        self.user_tower = tower_mlp(2 * feature_dim + self.user_features.out_dim, hidden, embedding_dim, dropout)
        self.item_tower = tower_mlp(feature_dim + self.item_features.out_dim, hidden, embedding_dim, dropout)

    def embed_users(self, users: UserBatch) -> torch.Tensor:
        """(B, embedding_dim) unit vectors."""
        batch = users.user.shape[0]
        if users.history.dim() != 2 or users.history.shape[0] != batch:
            raise ValueError(f"history must be ({batch}, L), got {tuple(users.history.shape)}")
        ids = id_embedding(self.user_id, users.user, cold_start=not self.training)  # (B, E)
        history = masked_mean_embedding(self.item_id, users.history)  # (B, E)
        parts = [ids, history, self.user_features(users.features, ids)]  # + (B, F_u)
        return F.normalize(self.user_tower(torch.cat(parts, dim=1)), dim=-1)

    def embed_items(self, items: ItemBatch) -> torch.Tensor:
        """(B, embedding_dim) unit vectors."""
        ids = id_embedding(self.item_id, items.item, cold_start=not self.training)  # (B, E)
        parts = [ids, self.item_features(items.features, ids)]  # + (B, F_i)
        return F.normalize(self.item_tower(torch.cat(parts, dim=1)), dim=-1)

    def forward(self, users: UserBatch, items: ItemBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, embedding_dim) user vectors and (B, embedding_dim) item vectors, unit length."""
        return self.embed_users(users), self.embed_items(items)
