"""`clpipe recommend`: a user's top-k items from the CURRENT snapshot of the model's embedding
table, through the snapshot's item index: `clpipe search --user` (flows/search.py) for a model
named by alias or version.

The user's vector is the snapshot's own user row (what refresh and reembed keep up to date, a
new user included, with no retraining); every item the user has an interaction with, in any
split, in the snapshot's dataset version (and in the dataset's LATEST version when it is newer)
is left out; every other item of the table is scored by its dot product with the user's vector
and the k best are listed with their titles (exactly, for a catalogue within the index's exact
search size, `cl_core.embeddings.snapshot_index`). No Prefect, Ray or model loading: the MLflow
registry (to resolve MODEL@ALIAS), the table's files and the dataset's interactions only.
"""

from __future__ import annotations

from typing import Any

from cl_core.embeddings import EmbeddingTable
from cl_core.search import SnapshotSearch
from flows.search import user_hits
from flows.workspace import Workspace


def recommend(workspace: Workspace, model_ref: str, user: str, k: int) -> dict[str, Any]:
    """{"model": {"name", "version"}, "user", "k", "table", "snapshot", "dataset": {"name",
    "version"}, "masked_items", "items": [{"rank", "id", "title", "score"}]}: the snapshot and
    model version the vectors come from, and how many items of the user's were left out.

    Raises:
        LookupError: an unknown model, a missing table, a user without a row in the snapshot
            (the message is one line).
        ValueError: k < 1, a model that is not a recommender, or a table of another model version.
    """
    import mlflow
    from mlflow import MlflowClient

    from flows import preflight
    from flows.mlflow_edge import registry

    if k < 1:
        raise ValueError(f"-k must be >= 1, got {k}")
    preflight.check_model(workspace.tracking_uri, model_ref)
    mlflow.set_tracking_uri(workspace.tracking_uri)
    version = registry.ModelRef.parse(model_ref).resolve(MlflowClient())
    dataset_name = version.tags.get("dataset.name", "")
    table = EmbeddingTable(workspace.embeddings, version.name, dataset_name)
    snapshot = table.current()
    if snapshot is None:
        raise LookupError(f"no embedding table at {table.path}: run `clpipe export --model {version.name}/{version.version} "
                          f"--dataset {dataset_name}` first")
    manifest = snapshot.manifest
    if manifest.model_version != str(version.version):
        raise ValueError(f"the table {table.path} holds vectors of {version.name} v{manifest.model_version}, not "
                         f"v{version.version}: run `clpipe reembed --model {version.name}/{version.version} "
                         f"--dataset {manifest.dataset_name}`")
    search = SnapshotSearch(snapshot)
    hits, masked = user_hits(search, workspace.datasets, str(user), k)
    return {
        "model": {"name": version.name, "version": str(version.version)}, "user": str(user), "k": k,
        "table": str(table.path), "snapshot": snapshot.id,
        "dataset": {"name": manifest.dataset_name, "version": manifest.dataset_version},
        "masked_items": masked,
        "items": [{"rank": h.rank, "id": h.id, "title": h.row.get("title") or h.id, "score": h.score} for h in hits],
    }


def format_recommendations(result: dict[str, Any]) -> str:
    model, dataset = result["model"], result["dataset"]
    lines = [f"top {len(result['items'])} for user {result['user']} ({model['name']} v{model['version']}, snapshot "
             f"{result['snapshot']} of {dataset['name']}@{dataset['version']}; {result['masked_items']} items the user "
             f"has left out):"]
    lines += [f"{item['rank']:>4}. {item['score']:+.4f}  {item['title']}  [{item['id']}]" for item in result["items"]]
    return "\n".join(lines)
