"""Bring a table up to date: decide what a model and dataset version need against CURRENT,
and write an incremental snapshot that copies every vector whose input did not change."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cl_core.datasets import DatasetVersion
from cl_core.embeddings.engine import EmbedEngine, as_engine
from cl_core.embeddings.inputs import (
    key_batches,
    key_schema,
    row_keys,
    table_rows,
)
from cl_core.embeddings.manifest import SnapshotManifest
from cl_core.embeddings.schema import LINEAGE_COLUMNS, embedding_schema
from cl_core.embeddings.table import EmbeddingTable, Snapshot
from cl_core.embeddings.writer import Embed, SnapshotWriter

UP_TO_DATE, INCREMENTAL, BACKFILL = "up_to_date", "incremental", "backfill"
_ROW = "__parent_row"
_KEY = "__row_key"
# Reused rows are copied in slices of this many, so the copy holds one slice of output at a time.
COPY_ROWS = 65_536


def decide(current: SnapshotManifest | None, model_version: str, dataset_version: str) -> str:
    """up_to_date: CURRENT has this model and dataset version; incremental: the same model, another
    dataset version; backfill: another model version, or no snapshot yet."""
    if current is None or current.model_version != model_version:
        return BACKFILL
    return UP_TO_DATE if current.dataset_version == dataset_version else INCREMENTAL


@dataclass(frozen=True)
class ReusePlan:
    """Which dataset rows keep their parent vector (`reused`: the dataset's key columns plus the
    parent row to copy from) and which need the model (`to_embed`: their ids, or for users and
    items their row keys, `inputs.row_keys`)."""

    reused: pa.Table
    to_embed: pa.Array
    deleted: int


def plan_reuse(dataset_keys: pa.Table, parent_keys: pa.Table) -> ReusePlan:
    """Join the dataset's rows with the parent's on (id, content_sha256): a match is reused, a new
    id or a changed input is embedded, a parent id missing from the dataset is deleted."""
    parent_rows = row_keys(parent_keys)
    parent = pa.table({_KEY: parent_rows, "content_sha256": parent_keys.column("content_sha256"),
                       _ROW: pa.array(np.arange(parent_keys.num_rows))})
    dataset_rows = row_keys(dataset_keys)
    joined = dataset_keys.append_column(_KEY, dataset_rows).join(parent, keys=[_KEY, "content_sha256"], join_type="left outer")
    matched = pc.is_valid(joined.column(_ROW))
    deleted = pc.sum(pc.invert(pc.is_in(parent_rows, value_set=dataset_rows))).as_py()
    return ReusePlan(
        reused=joined.filter(matched),
        to_embed=joined.filter(pc.invert(matched)).column(_KEY).combine_chunks(),
        deleted=int(deleted or 0),
    )


def _reused_batches(plan: ReusePlan, parent_rows: pa.Table, schema: pa.Schema):
    """The dataset's key columns with the parent's vector and lineage (the model and dataset
    version and time the vector was computed at), copied by row index: nothing is decoded."""
    key_names = schema.names[: schema.get_field_index("embedding")]
    copied = ["embedding", *LINEAGE_COLUMNS, "created_at"]
    for start in range(0, plan.reused.num_rows, COPY_ROWS):
        chunk = plan.reused.slice(start, COPY_ROWS)
        taken = parent_rows.take(chunk.column(_ROW))
        columns = [chunk.column(n) for n in key_names] + [taken.column(n) for n in copied]
        yield from pa.Table.from_arrays(columns, schema=schema).to_batches()


def write_incremental(
    table: EmbeddingTable,
    parent: Snapshot,
    dataset: DatasetVersion,
    embed: Embed | EmbedEngine,
    record: Mapping[str, Any],
    *,
    batch_size: int,
    keep_snapshots: int,
    progress: Callable[[int], None] | None = None,
) -> Snapshot:
    """A new snapshot of `dataset` for the parent's model: the parent's vectors of unchanged rows
    (copied here), the model's for new and changed ones (`embed`: a function run here or an
    engine, `cl_core.embeddings.engine`); checked and published as CURRENT. The caller holds
    `table.lock()`."""
    dimension = parent.manifest.dimension
    schema = embedding_schema(dimension, key_schema(dataset))
    parent_rows = parent.read()
    dataset_keys = pa.Table.from_batches(list(key_batches(dataset, batch_size)), schema=key_schema(dataset))
    plan = plan_reuse(dataset_keys, parent_rows)
    lineage = {"model_name": record["model_name"], "model_version": record["model_version"], "dataset_version": dataset.version}
    with SnapshotWriter(table, schema) as writer:
        for batch in _reused_batches(plan, parent_rows, schema):
            writer.write(batch)
        embedded = 0
        if len(plan.to_embed):
            embedded = len(as_engine(embed).embed_into(writer, dataset, lineage, batch_size=batch_size,
                                                       only_keys=plan.to_embed, progress=progress))
        writer.check(table_rows(dataset), dimension)
        return writer.publish({
            **record, "parent": parent.id,
            "rows_embedded": embedded, "rows_reused": plan.reused.num_rows, "rows_deleted": plan.deleted,
        }, keep_snapshots)
