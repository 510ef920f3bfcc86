"""interaction_rows.py and the table code on an interactions version: one row per user and per
item keyed by (entity, id), a content hash that follows exactly what a vector depends on, and
an incremental snapshot that embeds only the users and items whose inputs changed."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from cl_core.datasets import DatasetStore
from cl_core.embeddings import EmbeddingTable, write_full_snapshot
from cl_core.embeddings.incremental import plan_reuse, write_incremental
from cl_core.embeddings.inputs import input_batches, key_batches, key_schema, row_keys, table_rows
from cl_core.embeddings.interaction_rows import INTERACTION_KEYS
from tests.cl_core.embeddings.conftest import record

INTERACTIONS = [("u1", "1", 1), ("u1", "2", 2), ("u1", "3", 3), ("u1", "4", 4), ("1", "2", 1), ("1", "3", 2), ("1", "1", 3)]
ITEMS = {"1": ("One", "a|b"), "2": ("Two", "b"), "3": ("Three", ""), "4": ("Four", "c")}


def _version(store: DatasetStore, folder, interactions=INTERACTIONS, items=ITEMS):
    from cl_core.config import InteractionsSourceSpec, SideTableSpec

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inter.csv").write_text("user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in interactions))
    (folder / "items.csv").write_text("item_id,title,genres\n" + "".join(f"{i},{t},{g}\n" for i, (t, g) in items.items()))
    spec = InteractionsSourceSpec(items=SideTableSpec(path=str(folder / "items.csv"), id_column="item_id",
                                                       title_column="title", multi_valued_columns=("genres",)))
    return store.resolve("shop", store.ingest_interactions(folder / "inter.csv", "shop", spec).version)


def _hashes(version) -> dict[str, str]:
    keys = pa.Table.from_batches(list(key_batches(version, 3)), schema=key_schema(version))
    return dict(zip(row_keys(keys).to_pylist(), keys.column("content_sha256").to_pylist(), strict=True))


def fake_model(rows: list[dict]) -> np.ndarray:
    """A deterministic 'model' of the input dicts: two numbers from their canonical JSON."""
    texts = [json.dumps(row, sort_keys=True) for row in rows]
    return np.array([[len(t), float(sum(t.encode()) % 997)] for t in texts], dtype=np.float32)


def test_a_row_per_user_and_item_keyed_by_entity_and_id(tmp_path):
    version = _version(DatasetStore(tmp_path / "d"), tmp_path / "v1")
    assert key_schema(version) == INTERACTION_KEYS and table_rows(version) == 2 + 4
    # The input differs by entity (a user has a history, an item features): a batch holds one entity.
    batches = list(input_batches(version, 4))
    rows = [row for batch in batches for row in batch.to_pylist()]
    assert [row["entity"] for row in rows] == ["user"] * 2 + ["item"] * 4
    assert [row["id"] for row in rows] == ["1", "u1", "1", "2", "3", "4"]  # user "1" and item "1" both
    assert len({key for batch in batches for key in row_keys(batch).to_pylist()}) == 6
    # User "1": leave-last-out keeps items 2 (train) and 3 (val) as its history; item 1 is its test.
    assert rows[0]["input"] == {"user": "1", "history": ["2", "3"]}
    assert rows[2]["input"] == {"item": "1", "features": {"genres": ["a", "b"]}}
    assert [row["title"] for row in rows[2:]] == ["One", "Two", "Three", "Four"]
    only = list(input_batches(version, 4, only_ids=pa.array(["item:1", "user:u1"])))
    assert [key for batch in only for key in row_keys(batch).to_pylist()] == ["user:u1", "item:1"]


def test_the_hash_changes_with_a_history_or_features_not_with_a_title_or_the_test_item(tmp_path):
    store = DatasetStore(tmp_path / "d")
    before = _hashes(_version(store, tmp_path / "v1"))
    # User "1" gets a later interaction: its old test item joins its history (val), the new one is test.
    # Item "4" changes genres, item "2" only its title.
    items = {**ITEMS, "4": ("Four", "a"), "2": ("Deux", "b")}
    after = _hashes(_version(store, tmp_path / "v2", [*INTERACTIONS, ("1", "4", 9)], items))
    changed = sorted(key for key in before if before[key] != after[key])
    assert changed == ["item:4", "user:1"]


def test_incremental_embeds_only_changed_users_and_items(tmp_path):
    store = DatasetStore(tmp_path / "d")
    first = _version(store, tmp_path / "v1")
    table = EmbeddingTable(tmp_path / "e", "m", "shop")
    with table.lock():
        parent = write_full_snapshot(table, first, fake_model, 2, record(), batch_size=4, keep_snapshots=3)
    assert parent.manifest.rows == 6 and parent.read().column("entity").to_pylist().count("item") == 4
    # A new user "2" (whose id is also an item's) and a new item "5"; item "4" changes.
    second = _version(store, tmp_path / "v2", [*INTERACTIONS, ("2", "1", 1), ("2", "5", 2)],
                      {**ITEMS, "4": ("Four", "a"), "5": ("Five", "c")})
    embedded: list[dict] = []

    def recording(rows):
        embedded.extend(rows)
        return fake_model(rows)

    with table.lock():
        snapshot = write_incremental(table, parent, second, recording, record(action="incremental"), batch_size=4,
                                     keep_snapshots=3)
    m = snapshot.manifest
    assert (m.rows, m.rows_embedded, m.rows_reused, m.rows_deleted) == (3 + 5, 3, 5, 0)
    assert sorted(row.get("user") or f"item {row['item']}" for row in embedded) == ["2", "item 4", "item 5"]
    rows = snapshot.read()
    vectors = dict(zip(row_keys(rows).to_pylist(), rows.column("embedding").to_pylist(), strict=True))
    old = dict(zip(row_keys(parent.read()).to_pylist(), parent.read().column("embedding").to_pylist(), strict=True))
    assert all(vectors[key] == old[key] for key in ("user:1", "user:u1", "item:1", "item:2", "item:3"))
    plan = plan_reuse(pa.Table.from_batches(list(key_batches(second, 8))), parent.read())
    assert sorted(plan.to_embed.to_pylist()) == ["item:4", "item:5", "user:2"] and plan.deleted == 0
