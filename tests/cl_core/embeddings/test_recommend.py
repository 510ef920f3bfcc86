"""recommend.py on a real interactions version and a real snapshot: the user's vector is the
snapshot's user row, every item the user has in any split is left out, the top k is exact
(across batches, ties in table order), and a user without a row fails naming what to run."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from cl_core.datasets import DatasetStore
from cl_core.embeddings import EmbeddingTable, write_full_snapshot
from cl_core.embeddings import recommend as rec
from tests.cl_core.embeddings.conftest import fake_embed, record
from tests.cl_core.embeddings.test_interaction_rows import _version

# Every row's vector from its input: a user's from its history, an item's from its id.
ITEM_VECTORS = {"1": [1.0, 0.0], "2": [0.5, 0.75], "3": [0.0, 0.5], "4": [0.5, 0.75]}  # exact in binary


def model(rows: list[dict]) -> np.ndarray:
    vectors = []
    for row in rows:
        if "item" in row:
            vectors.append(ITEM_VECTORS[row["item"]])
        else:  # a user: the mean of its history's items
            vectors.append(np.mean([ITEM_VECTORS[i] for i in row["history"]], axis=0) if row["history"] else [0.0, 0.0])
    return np.asarray(vectors, dtype=np.float32)


@pytest.fixture
def shop(tmp_path):
    version = _version(DatasetStore(tmp_path / "d"), tmp_path / "v1")
    table = EmbeddingTable(tmp_path / "e", "m", "shop")
    with table.lock():
        snapshot = write_full_snapshot(table, version, model, 2, record(dataset_version=version.version),
                                       batch_size=4, keep_snapshots=3)
    return version, snapshot


def test_every_item_of_the_user_in_any_split_is_left_out(shop):
    version, _ = shop
    # User "1": items 2 (train), 3 (val), 1 (test, its last); user "u1": 1, 2, 3 (train), 4 (test).
    assert rec.interacted_items([version], "1") == {"1", "2", "3"}
    assert rec.interacted_items([version], "u1") == {"1", "2", "3", "4"}
    assert rec.interacted_items([version], "nobody") == set()


def test_the_user_vector_is_the_snapshots_row_and_the_ranking_exact(shop):
    version, snapshot = shop
    np.testing.assert_array_equal(rec.user_vector(snapshot, "1"), [0.25, 0.625])  # history 2, 3 (train, val)
    top = rec.recommend_from_snapshot(snapshot, "1", 10, rec.interacted_items([version], "1"))
    assert [(r.rank, r.id, r.title) for r in top] == [(1, "4", "Four")]  # 1, 2, 3 are the user's
    assert top[0].score == 0.5 * 0.25 + 0.75 * 0.625
    # Without a mask: every item, best first; items 2 and 4 tie (1.25) and keep table order.
    ranked = rec.top_items(snapshot, np.array([1.0, 1.0]), 4)
    assert [r.id for r in ranked] == ["2", "4", "1", "3"] and [r.rank for r in ranked] == [1, 2, 3, 4]
    assert [r.score for r in ranked] == [1.25, 1.25, 1.0, 0.5]
    assert [r.id for r in rec.top_items(snapshot, np.array([1.0, 1.0]), 2, exclude=["2"])] == ["4", "1"]


def test_the_top_k_is_the_same_when_items_are_scored_a_few_at_a_time(shop, monkeypatch):
    _, snapshot = shop
    rows = snapshot.read()
    items = rows.filter(pc.equal(rows.column("entity"), "item"))
    vectors = np.stack(items.column("embedding").to_numpy(zero_copy_only=False))
    rng = np.random.default_rng(0)
    for _ in range(5):
        query = rng.standard_normal(2).astype(np.float32)
        expected = [rec.top_items(snapshot, query, k) for k in (1, 3, 10)]
        monkeypatch.setattr(rec, "BATCH_ROWS", 1)
        assert [rec.top_items(snapshot, query, k) for k in (1, 3, 10)] == expected
        monkeypatch.setattr(rec, "BATCH_ROWS", 65_536)
        order = np.argsort(-(vectors @ query), kind="stable")
        assert [r.id for r in expected[2]] == [items.column("id")[int(i)].as_py() for i in order]


def test_a_user_without_a_row_fails_naming_user_model_dataset_snapshot_and_refresh(shop):
    version, snapshot = shop
    with pytest.raises(rec.UserNotInSnapshotError) as failed:
        rec.user_vector(snapshot, "u9")
    message = str(failed.value)
    for named in ("'u9'", snapshot.id, "model m v3", f"dataset d@{version.version}", "clpipe refresh"):
        assert named in message, message
    assert "\n" not in message
    with pytest.raises(ValueError, match="k must be >= 1"):
        rec.top_items(snapshot, np.zeros(2), 0)
    with pytest.raises(ValueError, match="2-d vectors, not 3-d"):
        rec.top_items(snapshot, np.zeros(3), 1)


def test_an_image_table_is_not_a_recommender(ingest, tmp_path):
    table = EmbeddingTable(tmp_path / "e", "m", "d")
    with table.lock():
        snapshot = write_full_snapshot(table, ingest([1, 2]), fake_embed, 2, record(), batch_size=4, keep_snapshots=3)
    with pytest.raises(ValueError, match="m is not a recommender"):
        rec.user_vector(snapshot, "img001")
