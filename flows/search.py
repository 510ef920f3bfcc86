"""`clpipe search`: the nearest rows of a model's CURRENT embedding table to an id, a sentence,
an image file or a user, through the snapshot's index (`cl_core.search`).

A sentence or an image is embedded with the model version that made the snapshot (its manifest
names it), never with whatever the alias points at now: vectors of two versions do not compare.
An id or a user needs no model at all: their vectors are the table's own rows, so those searches
read files only (no MLflow, Prefect or Ray). A user's search is `clpipe recommend`: the user's
row against the item rows, leaving out every item the user has an interaction with in the
snapshot's dataset version and in the dataset's LATEST one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cl_core.datasets import DatasetStore
from cl_core.embeddings import EmbeddingTable
from cl_core.embeddings.recommend import interacted_items
from cl_core.modalities import Modality, modality
from cl_core.search import SnapshotSearch, UnknownIdError
from flows.workspace import Workspace

QUERY_KINDS = ("id", "text", "image", "user")


def table_of(workspace: Workspace, model_name: str, dataset_name: str | None) -> EmbeddingTable:
    """The table of `model_name` on `dataset_name`, or on the model's only dataset when none is named.

    Raises:
        LookupError: no table, or several and none named (the message lists them).
    """
    if "@" in model_name or "/" in model_name:
        raise ValueError(f"--model takes a registered model's name, not {model_name!r}: a table holds one version at a "
                         "time, and the answer names the version that made it")
    folder = Path(workspace.embeddings) / model_name
    if dataset_name is None:
        names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else []
        if len(names) != 1:
            raise LookupError(f"model {model_name!r} has {'tables of datasets ' + ', '.join(names) if names else 'no table'} "
                              f"under {folder}: name one with --dataset" if names else
                              f"model {model_name!r} has no embedding table under {folder}: run `clpipe export` first")
        dataset_name = names[0]
    return EmbeddingTable(workspace.embeddings, model_name, dataset_name)


def open_search(workspace: Workspace, model_name: str, dataset_name: str | None) -> SnapshotSearch:
    table = table_of(workspace, model_name, dataset_name)
    snapshot = table.current()
    if snapshot is None:
        raise LookupError(f"no embedding table at {table.path}: run `clpipe export --model {model_name}@champion "
                          f"--dataset {table.dataset_name}` first")
    return SnapshotSearch(snapshot)


def user_hits(search: SnapshotSearch, datasets_root: Path, user: str, k: int) -> tuple[list, int]:
    """(the user's top-k items, how many items were left out): the snapshot's user row against
    its item rows, without the items the user already has.

    Raises:
        ValueError: the table is not a recommender's.
        UnknownIdError: the snapshot has no row for the user.
    """
    manifest = search.snapshot.manifest
    if "user" not in search.groups:
        raise ValueError(f"snapshot {search.snapshot.id} of {manifest.model_name} v{manifest.model_version} holds no "
                         f"users: {manifest.model_name} is not a recommender")
    try:
        vector = search.vectors_of([user], "user")
    except UnknownIdError as error:
        raise UnknownIdError(f"user {user!r} has no row in snapshot {search.snapshot.id} (model {manifest.model_name} "
                             f"v{manifest.model_version}, dataset {manifest.dataset_name}@{manifest.dataset_version}): a "
                             "user gets one once the dataset holds an interaction of theirs and `clpipe refresh` "
                             "(ingest, then reembed) has run") from error
    store = DatasetStore(datasets_root)
    versions = [store.resolve(manifest.dataset_name, manifest.dataset_version)]
    latest = store.latest(manifest.dataset_name)
    if latest is not None and latest != manifest.dataset_version:  # ingested since: its interactions count too
        versions.append(store.resolve(manifest.dataset_name, latest))
    interacted = interacted_items(versions, user)
    return search.by_vectors(vector, k, "item", exclude=[interacted])[0], len(interacted)


def snapshot_modality(workspace: Workspace, search: SnapshotSearch) -> Modality:
    """The modality record of the snapshot's dataset version."""
    m = search.snapshot.manifest
    return modality(DatasetStore(workspace.datasets).resolve(m.dataset_name, m.dataset_version).kind)


def wrong_query(record: Modality, kind: str, model: str) -> str:
    """Why a `kind` query does not apply to a table of `record`'s modality, and what does."""
    instead = f"--{record.query} or --id" if record.query else "--user or --id"
    return f"the table of {model} holds {record.noun}: it is not searched by {kind}; search it with {instead}"


def embed_query(workspace: Workspace, search: SnapshotSearch, kind: str, value: Any) -> np.ndarray:
    """(1, D): a sentence or an image embedded by the snapshot's own model version.

    Raises:
        ValueError: the table is of another modality than the query.
    """
    import mlflow

    from flows.table_runs import load_embedder

    manifest = search.snapshot.manifest
    record = snapshot_modality(workspace, search)
    if record.query != kind:
        raise ValueError(wrong_query(record, kind, manifest.model_name))
    mlflow.set_tracking_uri(workspace.tracking_uri)
    embed, _, _ = load_embedder({"name": manifest.model_name, "version": manifest.model_version})
    return np.asarray(embed([value]), dtype=np.float32)


def search(workspace: Workspace, model_name: str, dataset_name: str | None, kind: str, value: str | Path,
           k: int) -> dict[str, Any]:
    """{"model", "dataset", "snapshot", "query": {kind: value}, "k", "hits": [{"rank", "id", "score",
    ...the row's columns}], and for a user "masked_items"}. `kind` is one of QUERY_KINDS; a file
    (a Path: --image) is read and its bytes embedded.

    Raises:
        LookupError: no table, an unknown id or user (UnknownIdError), a missing file.
        ValueError: k out of range, a query of the wrong modality, an undecodable image.
        EmbeddingTableError: the table or its index is damaged.
    """
    if kind not in QUERY_KINDS:
        raise ValueError(f"unknown query kind {kind!r}; one of {QUERY_KINDS}")
    opened = open_search(workspace, model_name, dataset_name)
    extra: dict[str, Any] = {}
    shown = str(value)
    if kind == "id":
        hits = opened.by_ids([str(value)], k)[0]
    elif kind == "user":
        hits, masked = user_hits(opened, Path(workspace.datasets), str(value), k)
        extra["masked_items"] = masked
    else:
        if isinstance(value, Path):
            if not value.is_file():
                raise LookupError(f"{kind} file {value} does not exist")
            value = value.read_bytes()
        hits = opened.by_vectors(embed_query(workspace, opened, kind, value), k)[0]
    described = opened.describe()
    return {"model": described["model"], "dataset": described["dataset"], "snapshot": described["snapshot"],
            "table": str(opened.snapshot.path.parent), "query": {kind: shown}, "k": k, **extra,
            "hits": [hit.to_dict() for hit in hits]}


def format_hits(result: dict[str, Any]) -> str:
    model, dataset = result["model"], result["dataset"]
    (kind, value), = result["query"].items()
    masked = f"; {result['masked_items']} items the user has left out" if "masked_items" in result else ""
    lines = [f"top {len(result['hits'])} for {kind} {value!r} ({model['name']} v{model['version']}, snapshot "
             f"{result['snapshot']} of {dataset['name']}@{dataset['version']}{masked}):"]
    for hit in result["hits"]:
        shown = hit.get("title") or hit.get("text") or (f"label {hit['label']}" if "label" in hit else "")
        lines.append(f"{hit['rank']:>4}. {hit['score']:+.4f}  {shown}  [{hit['id']}]".replace("  []", ""))
    return "\n".join(lines)
