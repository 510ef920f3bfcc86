"""A user's top-k items by exact search over one snapshot of a recommender's embedding table
(`cl_core.embeddings.interaction_rows`: a row per user and per item, keyed by (entity, id)).

    snapshot = EmbeddingTable(root, model_name, dataset_name).current()
    dataset = DatasetStore(datasets_root).resolve(dataset_name, snapshot.manifest.dataset_version)
    top = recommend_from_snapshot(snapshot, user, k, interacted_items([dataset], user))

The user's vector is the snapshot's own user row: what the model's user tower made of the user's
id, side features and history in the snapshot's dataset version (refresh and reembed keep it
current, and embed a user that first appears in a later version with no retraining). Every item
the user has an interaction with, in any split (train, val and test), is left out: under
leave-last-out the test split is the user's latest interaction, which a recommendation must not
repeat. The score is the dot product of the two unit vectors, the score the model was trained
and evaluated with; every other item is scored, batch by batch, and the k best kept (ties by
table order, so the listing is stable).

No Prefect, MLflow or Ray here: `flows/recommend.py` resolves the model and the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from cl_core.datasets import DatasetVersion
from cl_core.embeddings.errors import EmbeddingTableError
from cl_core.embeddings.table import Snapshot
from cl_core.modalities.interactions import INTERACTIONS

BATCH_ROWS = 65_536  # item rows scored at a time: memory stays bounded whatever the catalogue's size


class UserNotInSnapshotError(LookupError):
    """The snapshot has no row for the user (a user the snapshot's dataset version does not hold)."""


@dataclass(frozen=True)
class Recommended:
    rank: int
    id: str
    title: str
    score: float


def interacted_items(datasets: Iterable[DatasetVersion], user: str) -> set[str]:
    """Every item `user` has an interaction with in any of `datasets` (interactions versions),
    in any split."""
    items: set[str] = set()
    for dataset in datasets:
        if dataset.kind != INTERACTIONS.name:
            raise TypeError(f"{dataset!r} is a {dataset.kind} dataset: it has no users' interactions")
        rows = ds.dataset([str(f) for f in dataset.files], schema=dataset.schema, format="parquet")
        found = rows.to_table(columns=["item"], filter=pc.field("user") == str(user))
        items.update(found.column("item").to_pylist())
    return items


def user_history(datasets: Iterable[DatasetVersion], user: str, n: int) -> list[str]:
    """The `n` items `user` interacted with most recently in any of `datasets` (interactions
    versions), newest first; an item seen twice counts at its latest time."""
    latest: dict[str, float] = {}
    for dataset in datasets:
        if dataset.kind != INTERACTIONS.name:
            raise TypeError(f"{dataset!r} is a {dataset.kind} dataset: it has no users' interactions")
        rows = ds.dataset([str(f) for f in dataset.files], schema=dataset.schema, format="parquet")
        found = rows.to_table(columns=["item", "timestamp"], filter=pc.field("user") == str(user))
        for item, when in zip(found.column("item").to_pylist(), found.column("timestamp").to_pylist(), strict=True):
            latest[item] = max(when, latest.get(item, when))
    return sorted(latest, key=lambda item: (-latest[item], item))[:n]


def check_recommender_table(snapshot: Snapshot) -> None:
    """The snapshot holds users' and items' rows (an `entity` column), not images or sentences.

    Raises:
        ValueError: it is the table of an image or text model.
    """
    if "entity" not in snapshot.dataset().schema.names:
        manifest = snapshot.manifest
        raise ValueError(f"snapshot {snapshot.id} of {manifest.model_name} v{manifest.model_version} on dataset "
                         f"{manifest.dataset_name}@{manifest.dataset_version} holds no users and items: "
                         f"{manifest.model_name} is not a recommender")


def user_vector(snapshot: Snapshot, user: str) -> np.ndarray:
    """float32 (D,): the snapshot's row for `user`.

    Raises:
        UserNotInSnapshotError: the snapshot has no row for the user; the message names the
            user, the model and its version, the dataset and its version, and the snapshot.
    """
    check_recommender_table(snapshot)
    rows = _read(snapshot, ["embedding"], (pc.field("entity") == "user") & (pc.field("id") == str(user)))
    if rows.num_rows == 0:
        m = snapshot.manifest
        raise UserNotInSnapshotError(
            f"user {str(user)!r} has no row in snapshot {snapshot.id} of the table {snapshot.path.parent} "
            f"(model {m.model_name} v{m.model_version}, dataset {m.dataset_name}@{m.dataset_version}): a user gets "
            f"one once the dataset holds an interaction of theirs and `clpipe refresh` (ingest, then reembed) has run")
    return _vectors(rows)[0]


def top_items(snapshot: Snapshot, vector: np.ndarray, k: int, exclude: Iterable[str] = ()) -> list[Recommended]:
    """The k items of the snapshot with the highest dot product with `vector`, leaving out the
    ids in `exclude`; exact (every item scored), best first, ties by table order."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vector.shape[0] != snapshot.manifest.dimension:
        raise ValueError(f"snapshot {snapshot.id} holds {snapshot.manifest.dimension}-d vectors, not {vector.shape[0]}-d")
    excluded = pa.array(sorted({str(i) for i in exclude}), pa.string())
    best_scores = np.empty(0, np.float32)
    best_ids: list[str] = []
    best_titles: list[str | None] = []
    try:
        batches = snapshot.dataset().to_batches(columns=["id", "title", "embedding"], filter=pc.field("entity") == "item",
                                                batch_size=BATCH_ROWS)
        for batch in batches:
            batch = batch.filter(pc.invert(pc.is_in(batch.column("id"), value_set=excluded)))
            if batch.num_rows == 0:
                continue
            # Kept rows first, then this batch's: a stable sort on -score keeps table order for ties.
            scores = np.concatenate([best_scores, _vectors(batch) @ vector])
            ids = best_ids + batch.column("id").to_pylist()
            titles = best_titles + batch.column("title").to_pylist()
            keep = np.argsort(-scores, kind="stable")[:k]
            best_scores = scores[keep]
            best_ids, best_titles = [ids[i] for i in keep], [titles[i] for i in keep]
    except EmbeddingTableError:
        raise
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for bad or vanished files
        raise EmbeddingTableError(f"snapshot {snapshot.path} could not be read: {error}".replace("\n", " ")) from None
    return [Recommended(rank, item, title or item, float(score))
            for rank, (item, title, score) in enumerate(zip(best_ids, best_titles, best_scores, strict=True), start=1)]


def recommend_from_snapshot(snapshot: Snapshot, user: str, k: int, interacted: Iterable[str]) -> list[Recommended]:
    """`user`'s top k items of the snapshot, scored with the snapshot's own user row, leaving out
    `interacted` (`interacted_items`)."""
    return top_items(snapshot, user_vector(snapshot, user), k, interacted)


def _read(snapshot: Snapshot, columns: list[str], row_filter: pc.Expression) -> pa.Table:
    try:
        return snapshot.dataset().to_table(columns=columns, filter=row_filter)
    except EmbeddingTableError:
        raise
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for bad or vanished files
        raise EmbeddingTableError(f"snapshot {snapshot.path} could not be read: {error}".replace("\n", " ")) from None


def _vectors(rows: pa.Table | pa.RecordBatch) -> np.ndarray:
    """float32 (N, D) of the rows' fixed-size `embedding` column."""
    column = rows.column("embedding")
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    dim = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
