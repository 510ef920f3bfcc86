"""A snapshot with every row embedded: what `export` writes, and a backfill for a new model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cl_core.datasets import DatasetVersion
from cl_core.embeddings.engine import EmbedEngine, as_engine
from cl_core.embeddings.inputs import key_schema, row_keys, table_rows
from cl_core.embeddings.schema import embedding_schema
from cl_core.embeddings.snapshot_index import IndexSettings
from cl_core.embeddings.table import EmbeddingTable, Snapshot
from cl_core.embeddings.writer import Embed, SnapshotWriter


def deleted_since(parent: Snapshot | None, ids: pa.ChunkedArray | pa.Array) -> int:
    """How many of the parent snapshot's rows are not among `ids` (row keys, `inputs.row_keys`)."""
    if parent is None:
        return 0
    columns = [name for name in ("entity", "id") if name in parent.dataset().schema.names]
    previous = row_keys(parent.read(columns=columns))
    return int(pc.sum(pc.invert(pc.is_in(previous, value_set=ids))).as_py() or 0)


def write_full_snapshot(
    table: EmbeddingTable,
    dataset: DatasetVersion,
    embed: Embed | EmbedEngine,
    dimension: int,
    record: Mapping[str, Any],
    *,
    batch_size: int,
    keep_snapshots: int,
    progress: Callable[[int], None] | None = None,
    index_settings: IndexSettings | None = None,
) -> Snapshot:
    """Embed every row of `dataset`, check the result is whole and publish it as the new
    CURRENT. `embed` is a function over a list of inputs (run here) or an engine
    (`cl_core.embeddings.engine`). `record` holds the manifest's model, run ids, action and
    `parent`; the caller holds `table.lock()`. CURRENT is untouched if anything fails before the
    publish."""
    lineage = {"model_name": record["model_name"], "model_version": record["model_version"], "dataset_version": dataset.version}
    parent = table.current()
    with SnapshotWriter(table, embedding_schema(dimension, key_schema(dataset)), index_settings=index_settings) as writer:
        ids = as_engine(embed).embed_into(writer, dataset, lineage, batch_size=batch_size, progress=progress)
        writer.check(table_rows(dataset), dimension)
        deleted = deleted_since(parent, ids)
        return writer.publish({
            **record, "parent": parent.id if parent else None,
            "rows_embedded": len(ids), "rows_reused": 0, "rows_deleted": deleted,
        }, keep_snapshots)
