"""What an interactions version contributes to its embedding table: one row per user and one
per item (column `entity`: "user" or "item"; `id`: the source's id; `title`), and the model's
input for each: what determines its vector.

A user's vector depends on its id, its side features and its history: the items it has seen in
the version (train and val, `cl_core.recommender.dataset.SEEN_SPLITS`: everything before its test
interaction; the model is fitted on train alone), in time order. That is the history served;
evaluation's val pass embeds users from their train items alone (`entity_inputs(...,
history_splits=("train",))`). An item's depends on its id and side features. `content_sha256` hashes exactly
that, so a later version re-embeds only the users whose features or history changed and the
items whose features changed. The input is a dict per row, what the registered recommender
takes as a DataFrame row: {"user": id, "history": [item ids], "features": {name: value}} or
{"item": id, "features": {...}} (`flows/mlflow_edge/recommender_pyfunc.py`).

Ids of users and items may coincide ("1" is both a user and an item in MovieLens): a row is
identified by (entity, id), `row_keys`.

The rows interface of `cl_core.embeddings.image_rows`, but for the parts: the rows are built
from the whole version (a user's history spans its parts), not one Parquet batch at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cl_core.datasets import DatasetVersion
from cl_core.datasets.content_hash import CONTENT_SHA256

ENTITIES = {"users": "user", "items": "item"}
INTERACTION_KEYS = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("entity", pa.string(), nullable=False),
    pa.field("title", pa.string()),
    pa.field(CONTENT_SHA256, pa.string(), nullable=False),
])
KEYS = INTERACTION_KEYS
INPUT_COLUMN = "input"
_NOT_FROM_PARTS = "users' and items' rows come from `input_batches`, not from the parts"


def table_rows(dataset: DatasetVersion) -> int:
    """Rows the table holds for this version: its users plus its items."""
    return int(dataset.manifest["users"]) + int(dataset.manifest["items"])


def key_batches(dataset: DatasetVersion, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The key columns of every user, then every item."""
    yield from entity_batches(dataset, batch_size, with_input=False)


def input_batches(dataset: DatasetVersion, batch_size: int, only_ids: pa.Array | None = None) -> Iterator[pa.RecordBatch]:
    """The key columns plus the model's input of every user and item, or only of the rows whose
    `row_keys` are in `only_ids`."""
    yield from entity_batches(dataset, batch_size, with_input=True, only_keys=only_ids)


def part_columns(dataset: DatasetVersion) -> list[str]:
    raise TypeError(f"{dataset!r}: {_NOT_FROM_PARTS}")


def part_ids(only_ids: pa.Array) -> pa.Array:
    raise TypeError(_NOT_FROM_PARTS)


def parts_rows(batch: pa.RecordBatch | pa.Table, only_ids: pa.Array | None = None) -> pa.Table:
    raise TypeError(_NOT_FROM_PARTS)


def row_keys(table: pa.Table | pa.RecordBatch) -> pa.Array:
    """"user:<id>" / "item:<id>": one key per row across both entities (the entity has no ":")."""
    return pc.binary_join_element_wise(table.column("entity"), table.column("id"), ":")


def user_histories(dataset: DatasetVersion, user_ids: list[str],
                   splits: tuple[str, ...] | None = None) -> list[list[str]]:
    """Each user's items (source ids) in `splits` (None: the seen splits, train and val), oldest
    first, ties in time by item order; one list per id of `user_ids` (empty for a user without
    interactions there)."""
    if splits is None:
        from cl_core.recommender.dataset import SEEN_SPLITS  # here: the recommender package loads torch

        splits = SEEN_SPLITS
    seen = dataset.read(columns=["user", "item", "timestamp", "split"])
    seen = seen.filter(pc.is_in(seen.column("split"), value_set=pa.array(list(splits), pa.string())))
    items = _entity_ids(dataset, "items")
    user_index = pc.index_in(seen.column("user"), value_set=pa.array(user_ids, pa.string())).to_numpy(zero_copy_only=False)
    item_index = pc.index_in(seen.column("item"), value_set=pa.array(items, pa.string())).to_numpy(zero_copy_only=False)
    timestamps = seen.column("timestamp").to_numpy()
    order = np.lexsort((item_index, timestamps, user_index))  # the order `load_interactions` sorts by
    counts = np.bincount(user_index, minlength=len(user_ids))
    sorted_items = seen.column("item").to_numpy(zero_copy_only=False)[order].tolist()
    histories, start = [], 0
    for count in counts:
        histories.append(sorted_items[start : start + count])
        start += count
    return histories


def _entity_ids(dataset: DatasetVersion, kind: str) -> list[str]:
    return pq.read_table(dataset.entity_files(kind), columns=["id"]).column("id").to_pylist()


def _content_sha256(entity: str, model_input: dict[str, Any]) -> str:
    # Canonical JSON of exactly what the model reads for the row (its id included: the id
    # embedding is part of the vector).
    text = json.dumps({"entity": entity, **model_input}, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entity_inputs(dataset: DatasetVersion, kind: str, history_splits: tuple[str, ...] | None = None,
                  ) -> tuple[list[str], list[str | None], list[dict[str, Any]]]:
    """(ids, titles, model inputs) of every user or item (`kind` "users" / "items") in id order;
    a user's history from `history_splits` (None: the seen splits, what the table serves)."""
    table = pq.read_table(dataset.entity_files(kind))
    names = list(dataset.manifest["entities"][kind]["features"])
    ids = table.column("id").to_pylist()
    titles = table.column("title").to_pylist()
    columns = {name: table.column(name).to_pylist() for name in names}
    entity = ENTITIES[kind]
    inputs: list[dict[str, Any]] = [{entity: value} for value in ids]
    if names:
        for row, model_input in enumerate(inputs):
            model_input["features"] = {name: columns[name][row] for name in names}
    if kind == "users":
        for model_input, history in zip(inputs, user_histories(dataset, ids, history_splits), strict=True):
            model_input["history"] = history
    return ids, titles, inputs


def entity_batches(dataset: DatasetVersion, batch_size: int, with_input: bool,
                   only_keys: pa.Array | None = None) -> Iterator[pa.RecordBatch]:
    """Every user, then every item, `batch_size` rows at a time: the key columns
    (`INTERACTION_KEYS`) and with `with_input` the model's input (column "input", a struct per
    row); only the rows whose `row_keys` are in `only_keys` when given."""
    for kind, entity in ENTITIES.items():
        ids, titles, inputs = entity_inputs(dataset, kind)
        hashes = [_content_sha256(entity, model_input) for model_input in inputs]
        for start in range(0, len(ids), batch_size):
            part = slice(start, start + batch_size)
            columns = [pa.array(ids[part], pa.string()), pa.array([entity] * len(ids[part]), pa.string()),
                       pa.array(titles[part], pa.string()), pa.array(hashes[part], pa.string())]
            batch = pa.record_batch(columns, schema=INTERACTION_KEYS)
            if with_input:
                batch = batch.append_column(INPUT_COLUMN, pa.array(inputs[part]))
            if only_keys is not None:
                batch = batch.filter(pc.is_in(row_keys(batch), value_set=only_keys))
            if batch.num_rows:
                yield batch
