"""Embedding tables: per (model, dataset), immutable snapshots and a CURRENT pointer.

    table = EmbeddingTable("workspace/embeddings", "digits-ntxent", "digits")
    with table.lock(), SnapshotWriter(table, embedding_schema(dim)) as writer:
        write_embedded(dataset_batches, embed, writer, "image", lineage)
        writer.publish(record, keep_snapshots=3)
    rows = open_current("workspace/embeddings", "digits-ntxent", "digits").to_table()

No Prefect, MLflow or Ray here: the export and reembed flows orchestrate these pieces.
"""

from __future__ import annotations

from cl_core.embeddings.errors import EmbeddingTableError
from cl_core.embeddings.full_snapshot import write_full_snapshot
from cl_core.embeddings.lineage import describe_table, format_table
from cl_core.embeddings.manifest import MANIFEST_FILE, SnapshotManifest, read_manifest
from cl_core.embeddings.schema import (
    IMAGE_KEYS,
    TEXT_KEYS,
    embedding_schema,
    sentence_rows,
)
from cl_core.embeddings.table import (
    CURRENT_FILE,
    EmbeddingTable,
    Snapshot,
    new_snapshot_id,
    open_current,
)
from cl_core.embeddings.writer import SnapshotWriter, with_vectors, write_embedded

__all__ = [
    "CURRENT_FILE",
    "IMAGE_KEYS",
    "MANIFEST_FILE",
    "TEXT_KEYS",
    "EmbeddingTable",
    "EmbeddingTableError",
    "Snapshot",
    "SnapshotManifest",
    "SnapshotWriter",
    "describe_table",
    "embedding_schema",
    "format_table",
    "new_snapshot_id",
    "open_current",
    "read_manifest",
    "sentence_rows",
    "with_vectors",
    "write_embedded",
    "write_full_snapshot",
]
