"""A small synthetic interactions version, ingested from its source files like a user's own."""

from __future__ import annotations

import pytest

from cl_core.config import InteractionsSourceSpec, SideTableSpec
from cl_core.datasets import DatasetStore
from cl_core.recommender.synthetic import clustered_interactions


def synthetic_spec(paths) -> InteractionsSourceSpec:
    """How `SyntheticInteractions.write_csv`'s files read: the spec a config would give."""
    return InteractionsSourceSpec(
        users=SideTableSpec(path=str(paths["users"]), id_column="user_id", categorical_columns=("segment",),
                            numeric_columns=("score",)),
        items=SideTableSpec(path=str(paths["items"]), id_column="item_id", title_column="title",
                            multi_valued_columns=("genres",), numeric_columns=("year",)),
    )


@pytest.fixture(scope="module")
def synthetic_version(tmp_path_factory):
    """(store, DatasetVersion) of 40 users x 30 items, 6 interactions each."""
    root = tmp_path_factory.mktemp("interactions")
    paths = clustered_interactions(num_users=40, num_items=30, clusters=3, per_user=6, seed=2).write_csv(root / "source")
    store = DatasetStore(root / "datasets")
    store.ingest_interactions(paths["interactions"], "toy", synthetic_spec(paths))
    return store, store.resolve("toy"), paths
