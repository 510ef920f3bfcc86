"""An interactions version read back for training and evaluation: integer-coded arrays.

    data = load_interactions(DatasetStore("workspace/datasets").resolve("ml-100k"))
    data.train.users, data.train.items          # int64 (M,) indices into data.users / data.items
    data.users.ids[data.test.users[0]]           # the source's user id of the first test row
    data.items.index(["50", "181"])              # int64 (2,) item indices of two source ids
    offsets, items = data.train.by_user(len(data.users))   # each user's training items in time order
    genres = data.items.multi_valued["class"].multi_hot()   # float32 (I, 19)

User index i is the i-th user id in id order (numeric order when every user id is an integer,
else string order; `id_order`), and likewise for items; the numbering is stored with the version
(its users and items tables), so every reader of a version numbers ids the same way. Every user
and item that has an interaction, in any split, has an index; their side features are missing
when the side table had no (good) row for them.

Categorical codes reserve 0 for "missing" (and multi-valued ones use 0 as padding): value
`vocabulary[k]` is code k + 1, so an embedding table of `len(vocabulary) + 1` rows with
`padding_idx=0` takes the codes as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cl_core.datasets.dataset_version import DatasetVersion
from cl_core.datasets.records import SPLITS
from cl_core.modalities.interactions import INTERACTIONS


class UnknownIdError(KeyError):
    """An id that is not in a version's users or items; the message names it."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0])


@dataclass(frozen=True)
class CategoricalFeature:
    """One value per entity. `codes`: int64 (N,), 0 = missing, k = vocabulary[k - 1];
    `vocabulary`: the distinct values, sorted."""

    codes: np.ndarray
    vocabulary: tuple[str, ...]


@dataclass(frozen=True)
class MultiValuedFeature:
    """Several values per entity (e.g. genres), as CSR: entity i has the codes
    `codes[offsets[i]:offsets[i + 1]]` (each k >= 1 means vocabulary[k - 1]); none when missing.

    `offsets`: int64 (N + 1,); `codes`: int64 (total values,) — what torch's `EmbeddingBag` takes
    as (input, offsets[:-1]).
    """

    offsets: np.ndarray
    codes: np.ndarray
    vocabulary: tuple[str, ...]

    def multi_hot(self) -> np.ndarray:
        """float32 (N, len(vocabulary)): 1 where the entity has the value."""
        count = len(self.offsets) - 1
        matrix = np.zeros((count, len(self.vocabulary)), dtype=np.float32)
        rows = np.repeat(np.arange(count), np.diff(self.offsets))  # (total values,)
        matrix[rows, self.codes - 1] = 1.0
        return matrix

    def padded(self) -> np.ndarray:
        """int64 (N, most values of one entity), codes left-aligned, padded with 0."""
        lengths = np.diff(self.offsets)
        width = int(lengths.max(initial=0))
        matrix = np.zeros((len(lengths), width), dtype=np.int64)
        rows = np.repeat(np.arange(len(lengths)), lengths)
        columns = np.arange(len(self.codes)) - np.repeat(self.offsets[:-1], lengths)
        matrix[rows, columns] = self.codes
        return matrix


@dataclass(frozen=True)
class NumericFeature:
    """One number per entity. `values`: float64 (N,), NaN where missing."""

    values: np.ndarray

    @property
    def missing(self) -> np.ndarray:
        """bool (N,)."""
        return np.isnan(self.values)

    def standardized(self) -> np.ndarray:
        """float32 (N,): (value - mean) / std over the known values, missing ones 0 (the mean);
        all 0 when fewer than two values are known or they are all equal."""
        known = self.values[~self.missing]
        out = np.zeros(len(self.values), dtype=np.float32)
        if len(known) < 2 or known.std() == 0:
            return out
        out[~self.missing] = (known - known.mean()) / known.std()
        return out


@dataclass(frozen=True)
class Entities:
    """A version's users or items: row i is index i.

    `ids`: object (N,) of str, the source's ids in id order; `titles`: str or None per entity
    (a display name such as a movie title); the side features by name, as the manifest lists them.
    """

    kind: str  # "users" or "items"
    ids: np.ndarray
    titles: tuple[str | None, ...]
    categorical: dict[str, CategoricalFeature]
    multi_valued: dict[str, MultiValuedFeature]
    numeric: dict[str, NumericFeature]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_positions", {value: i for i, value in enumerate(self.ids.tolist())})

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, ids: Iterable[str] | str) -> np.ndarray | int:
        """The index of one id (int), or of each of several (int64 (K,)).

        Raises:
            UnknownIdError: (a KeyError) an id the version has no interaction of.
        """
        positions = self._positions  # type: ignore[attr-defined]
        single = isinstance(ids, str)
        wanted = [ids] if single else list(ids)
        for value in wanted:
            if value not in positions:
                raise UnknownIdError(f"{self.kind[:-1]} id {value!r} is not in this dataset ({len(self)} {self.kind})")
        found = np.fromiter((positions[value] for value in wanted), np.int64, len(wanted))
        return int(found[0]) if single else found

    def title(self, index: int) -> str:
        """The display name of entity `index`: its title, else its id."""
        return self.titles[index] or self.ids[index]


@dataclass(frozen=True)
class Interactions:
    """The interactions of one split (or several), sorted by (user, timestamp, item).

    `users`, `items`: int64 (M,) indices; `timestamps`: float64 (M,); `ratings`: float32 (M,), NaN
    where a row has none, or None when the version has no rating at all.
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    ratings: np.ndarray | None

    def __len__(self) -> int:
        return len(self.users)

    def by_user(self, num_users: int) -> tuple[np.ndarray, np.ndarray]:
        """Each user's items in time order, as CSR: user u's are items[offsets[u]:offsets[u + 1]].

        Returns:
            offsets int64 (num_users + 1,), items int64 (M,).
        """
        counts = np.bincount(self.users, minlength=num_users)  # (U,)
        offsets = np.zeros(num_users + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return offsets, self.items

    @staticmethod
    def combined(parts: Sequence[Interactions]) -> Interactions:
        """The rows of `parts` together, sorted by (user, timestamp, item)."""
        users = np.concatenate([p.users for p in parts])
        items = np.concatenate([p.items for p in parts])
        timestamps = np.concatenate([p.timestamps for p in parts])
        ratings = None if any(p.ratings is None for p in parts) else np.concatenate([p.ratings for p in parts])
        order = np.lexsort((items, timestamps, users))
        return Interactions(users[order], items[order], timestamps[order], None if ratings is None else ratings[order])


@dataclass(frozen=True)
class InteractionData:
    """A whole interactions version, integer-coded: what training and evaluation read."""

    name: str
    version: str
    users: Entities
    items: Entities
    train: Interactions
    val: Interactions
    test: Interactions

    def split(self, name: str) -> Interactions:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return getattr(self, name)

    def seen(self, *splits: str) -> Interactions:
        """The interactions of `splits` together (e.g. "train", "val": what a model evaluated on
        test was fitted on), sorted by (user, timestamp, item)."""
        return Interactions.combined([self.split(s) for s in splits])


def _categorical(column: pa.ChunkedArray) -> CategoricalFeature:
    vocabulary = tuple(sorted(set(v for v in column.to_pylist() if v is not None)))
    position = pc.index_in(column, value_set=pa.array(vocabulary, pa.string()))  # null for missing
    codes = pc.fill_null(pc.add(position, 1), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return CategoricalFeature(codes, vocabulary)


def _multi_valued(column: pa.ChunkedArray) -> MultiValuedFeature:
    lists = column.to_pylist()
    vocabulary = tuple(sorted({v for values in lists if values for v in values}))
    code_of = {value: k + 1 for k, value in enumerate(vocabulary)}
    lengths = np.fromiter((len(values) if values else 0 for values in lists), np.int64, len(lists))
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = np.fromiter((code_of[v] for values in lists if values for v in values), np.int64, int(offsets[-1]))
    return MultiValuedFeature(offsets, codes, vocabulary)


def _entities(dataset: DatasetVersion, kind: str) -> Entities:
    table = pq.read_table(dataset.entity_files(kind))
    features: dict[str, str] = dataset.manifest["entities"][kind]["features"]
    typed: dict[str, dict] = {"categorical": {}, "multi_valued": {}, "numeric": {}}
    for name, feature_type in features.items():
        column = table[name]
        if feature_type == "categorical":
            typed[feature_type][name] = _categorical(column)
        elif feature_type == "multi_valued":
            typed[feature_type][name] = _multi_valued(column)
        else:
            values = pc.fill_null(column, float("nan")).to_numpy(zero_copy_only=False).astype(np.float64)
            typed[feature_type][name] = NumericFeature(values)
    return Entities(
        kind=kind,
        ids=np.asarray(table["id"].to_pylist(), dtype=object),
        titles=tuple(table["title"].to_pylist()),
        categorical=typed["categorical"],
        multi_valued=typed["multi_valued"],
        numeric=typed["numeric"],
    )


def _codes(column: pa.ChunkedArray, entities: Entities) -> np.ndarray:
    position = pc.index_in(column, value_set=pa.array(entities.ids.tolist(), pa.string()))
    if position.null_count:
        raise ValueError(f"the interactions hold {entities.kind} missing from the version's {entities.kind} table")
    return position.to_numpy(zero_copy_only=False).astype(np.int64)


def load_interactions(dataset: DatasetVersion) -> InteractionData:
    """Read an interactions version whole: its splits as integer-coded arrays, its users and
    items with their ids, titles and side features.

    Raises:
        TypeError: `dataset` is not an interactions version.
    """
    if dataset.kind != INTERACTIONS.name:
        raise TypeError(f"{dataset!r} is a {dataset.kind} dataset, not an interactions one")
    users, items = _entities(dataset, "users"), _entities(dataset, "items")
    table = dataset.read()
    rated = dataset.manifest["rated_rows"] > 0
    parts = {}
    for split in SPLITS:
        rows = table.filter(pc.field("split") == split)
        ratings = pc.fill_null(rows["rating"], float("nan")).to_numpy(zero_copy_only=False).astype(np.float32)
        part = Interactions(
            users=_codes(rows["user"], users),
            items=_codes(rows["item"], items),
            timestamps=rows["timestamp"].to_numpy().astype(np.float64),
            ratings=ratings if rated else None,
        )
        parts[split] = Interactions.combined([part])  # stored in this order already; a scan need not keep it
    return InteractionData(dataset.name, dataset.version, users, items, **parts)
