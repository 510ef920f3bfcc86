"""Search one snapshot of an embedding table: nearest neighbours by vector or by id.

    search = SnapshotSearch(EmbeddingTable(root, "digits-ntxent", "digits").current())
    search.by_vectors(queries, k=10)            # [[Hit(rank, id, score, row), ...], ...]
    search.by_ids(["17"], k=10)                 # neighbours of rows of the table, not themselves
    search.snapshot.id, search.snapshot.manifest.model_version   # what answered

No Prefect, MLflow or Ray here: the CLI and the service embed a query with the snapshot's model.
"""

from __future__ import annotations

from cl_core.search.snapshot_search import Hit, SnapshotSearch, UnknownIdError, open_current_search

__all__ = ["Hit", "SnapshotSearch", "UnknownIdError", "open_current_search"]
