"""`clpipe recommend`: a user's top-k unseen items, by exact search over the item rows of the
CURRENT snapshot of the model's embedding table.

The user's vector comes from the registered recommender (its history and features as of
training); the items it had in training (train and val) are left out; every other item of the
table is scored by its dot product with the user's vector (the score the model was trained and
evaluated with) and the k best are listed with their titles. No Prefect, Ray or dataset: the
MLflow registry and the table's files only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow.compute as pc

from cl_core.embeddings import EmbeddingTable, EmbeddingTableError
from flows.workspace import Workspace


def recommend(workspace: Workspace, model_ref: str, user: str, k: int) -> dict[str, Any]:
    """{"model", "user", "k", "table", "snapshot", "items": [{"rank", "id", "title", "score"}]}.

    Raises:
        LookupError: an unknown model, user or table (the message is one line).
        ValueError: k < 1, a model that is not a recommender, or a table of another model version.
    """
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    from flows import preflight, registry

    if k < 1:
        raise ValueError(f"-k must be >= 1, got {k}")
    preflight.check_model(workspace.tracking_uri, model_ref)
    mlflow.set_tracking_uri(workspace.tracking_uri)
    version = registry.ModelRef.parse(model_ref).resolve(MlflowClient())
    shown = f"{version.name} v{version.version}"
    model = mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")
    recommender = model.unwrap_python_model()
    if getattr(recommender, "modality", None) != "interactions":
        raise ValueError(f"model {shown} embeds {getattr(recommender, 'modality', 'images or text')}, it is not a recommender")
    table = EmbeddingTable(workspace.embeddings, version.name, version.tags.get("dataset.name", ""))
    snapshot = table.current()
    if snapshot is None:
        raise LookupError(f"no embedding table at {table.path}: run `clpipe export --model {version.name}@champion "
                          f"--dataset {version.tags.get('dataset.name')}` first")
    if snapshot.manifest.model_version != str(version.version):
        raise ValueError(f"the table {table.path} holds vectors of {version.name} v{snapshot.manifest.model_version}, not "
                         f"v{version.version}: run `clpipe reembed --model {version.name}/{version.version} "
                         f"--dataset {snapshot.manifest.dataset_name}`")
    try:
        vector = np.asarray(model.predict(pd.DataFrame({"user": [str(user)]})), dtype=np.float32)[0]  # (D,)
        seen = recommender.seen_item_ids(str(user))
    except KeyError as error:  # UnknownIdError
        raise LookupError(f"{error} (model {shown})") from None
    items = snapshot.dataset().to_table(columns=["id", "title", "embedding"], filter=pc.field("entity") == "item")
    ids = items.column("id").to_numpy(zero_copy_only=False)
    dim = items.schema.field("embedding").type.list_size
    vectors = items.column("embedding").combine_chunks().flatten().to_numpy().reshape(-1, dim)  # (I, D)
    scores = vectors @ vector  # (I,)
    candidates = np.flatnonzero(~np.isin(ids, np.asarray(seen, dtype=object)))
    # Exact search: every candidate scored; ties by table order, so the listing is stable.
    best = candidates[np.argsort(-scores[candidates], kind="stable")[:k]]
    titles = items.column("title").to_pylist()
    return {
        "model": {"name": version.name, "version": str(version.version)}, "user": str(user), "k": k,
        "table": str(table.path), "snapshot": snapshot.id, "seen_items": len(seen),
        "items": [{"rank": rank, "id": str(ids[i]), "title": titles[i] or str(ids[i]), "score": float(scores[i])}
                  for rank, i in enumerate(best, start=1)],
    }


def format_recommendations(result: dict[str, Any]) -> str:
    model = result["model"]
    lines = [f"top {len(result['items'])} for user {result['user']} ({model['name']} v{model['version']}, "
             f"{result['seen_items']} seen items left out, snapshot {result['snapshot']}):"]
    lines += [f"{item['rank']:>4}. {item['score']:+.4f}  {item['title']}  [{item['id']}]" for item in result["items"]]
    return "\n".join(lines)


def recommend_command(workspace: Workspace, model_ref: str, user: str, k: int, as_json: bool) -> int:
    """Print the recommendations (or one JSON line); exit 1 with a one-line error."""
    import json
    import sys

    try:
        result = recommend(workspace, model_ref, user, k)
    except (LookupError, ValueError, EmbeddingTableError) as error:
        message = str(error).replace("\n", " ")
        print(f"clpipe recommend failed: {message}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"command": "recommend", "workspace": str(workspace.root), **result}), flush=True)
    else:
        print(format_recommendations(result), flush=True)
    return 0
