"""From a stored interactions version (`load_interactions`) to the two-tower model's training
arrays (`InteractionsData`).

What the model is fitted on: the train and the val split together (`SEEN_SPLITS`). Training
has no early stopping, so val would otherwise go unused; the test split (each user's last
interaction under leave-last-out) stays held out. The same pairs are each user's history when
the model embeds it, what evaluation excludes from the ranking, and what the baselines fit on,
so the model and the baselines see the same data.
"""

from __future__ import annotations

from cl_core.datasets.sources.interactions.data import InteractionData, Interactions
from cl_core.recommender.features import FeatureCodec
from cl_core.recommender.training_data import InteractionsData

SEEN_SPLITS = ("train", "val")


def seen_interactions(data: InteractionData) -> Interactions:
    """The interactions the model is fitted on, sorted by (user, timestamp, item)."""
    return data.seen(*SEEN_SPLITS)


def feature_codecs(data: InteractionData) -> tuple[FeatureCodec, FeatureCodec]:
    """(users', items') codecs of a version: the vocabularies and statistics training encodes with."""
    return FeatureCodec.fit(data.users), FeatureCodec.fit(data.items)


def training_arrays(data: InteractionData, history_length: int) -> InteractionsData:
    """The seen interactions of every user and item of `data` as training arrays, with histories
    of `history_length` items and the side features encoded by `feature_codecs(data)`.

    Raises:
        ValueError: no seen interactions, or fewer than 2 items (naming what is missing).
    """
    seen = seen_interactions(data)
    if len(seen) == 0:
        raise ValueError(f"dataset {data.name}@{data.version} has no {' or '.join(SEEN_SPLITS)} interactions to train on")
    users_codec, items_codec = feature_codecs(data)
    return InteractionsData.from_interactions(
        seen.users, seen.items, seen.timestamps, len(data.users), len(data.items), history_length,
        users_codec.from_entities(data.users), items_codec.from_entities(data.items),
    )
