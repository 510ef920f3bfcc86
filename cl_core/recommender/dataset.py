"""From a stored interactions version (`load_interactions`) to the two-tower model's training
arrays (`InteractionsData`), and which splits each step reads.

    TRAIN_SPLITS   what the model is fitted on: train only. Val chooses the settings and gates
                   the champion; test is scored once and reported (`cl_core.evaluation.split_scores`).
    SEEN_SPLITS    what has happened before the test interactions: train and val. It is each
                   user's history when the model embeds it for the test split and for serving (the
                   embedding table's user rows, the registered encoder's stored histories), what the
                   test ranking excludes, and what the reported baselines fit on.

Each evaluated split has its own "seen" (`seen_before`): scoring val, a user's history and the
excluded items are its train interactions; scoring test, its train and val ones (the val
interaction happened before the test one, under leave-two-out and under time cutoffs alike; the
model is not retrained on it, it only enters the user tower's input).
"""

from __future__ import annotations

from types import MappingProxyType

from cl_core.datasets.sources.interactions.data import InteractionData, Interactions
from cl_core.recommender.features import FeatureCodec
from cl_core.recommender.training_data import InteractionsData

TRAIN_SPLITS = ("train",)
SEEN_SPLITS = ("train", "val")
# The splits a user's history and the excluded items come from, when scoring each split.
SEEN_BEFORE = MappingProxyType({"val": TRAIN_SPLITS, "test": SEEN_SPLITS})


def seen_before(split: str) -> tuple[str, ...]:
    """The splits seen before `split`'s interactions ("val": train; "test": train and val)."""
    try:
        return SEEN_BEFORE[split]
    except KeyError:
        raise ValueError(f"only {tuple(SEEN_BEFORE)} are scored, got {split!r}") from None


def seen_interactions(data: InteractionData, splits: tuple[str, ...] = SEEN_SPLITS) -> Interactions:
    """The interactions of `splits` (by default everything before test: the serving history),
    sorted by (user, timestamp, item)."""
    return data.seen(*splits)


def training_interactions(data: InteractionData) -> Interactions:
    """The interactions the model is fitted on (`TRAIN_SPLITS`), sorted by (user, timestamp, item)."""
    return data.seen(*TRAIN_SPLITS)


def feature_codecs(data: InteractionData) -> tuple[FeatureCodec, FeatureCodec]:
    """(users', items') codecs of a version: the vocabularies and statistics training encodes with."""
    return FeatureCodec.fit(data.users), FeatureCodec.fit(data.items)


def training_arrays(data: InteractionData, history_length: int) -> InteractionsData:
    """The train interactions of every user and item of `data` as training arrays, with histories
    of `history_length` items and the side features encoded by `feature_codecs(data)`.

    Raises:
        ValueError: no train interactions, or fewer than 2 items (naming what is missing).
    """
    train = training_interactions(data)
    if len(train) == 0:
        raise ValueError(f"dataset {data.name}@{data.version} has no {' or '.join(TRAIN_SPLITS)} interactions to train on")
    users_codec, items_codec = feature_codecs(data)
    return InteractionsData.from_interactions(
        train.users, train.items, train.timestamps, len(data.users), len(data.items), history_length,
        users_codec.from_entities(data.users), items_codec.from_entities(data.items),
    )
