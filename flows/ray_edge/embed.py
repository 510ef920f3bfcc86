"""The `ray` export engine (`export.engine: ray`): Ray Data embeds a snapshot's rows on an actor
pool and writes them as part files into the snapshot's staging folder; the driver's
`SnapshotWriter` adopts, checks and publishes them exactly as it does the local engine's.

    read_parquet(version's parts, only the columns needed; for a reembed only the rows to
                 embed, the filter pushed down into the scan)   read tasks, across the cluster
      -> repartition(blocks of 4 batches, streaming)            so that every actor gets work
      -> map_batches(_EmbedActor, ActorPoolStrategy(size=actors))   each actor loads the
         registered model version once; builds the table rows of each batch
         (`cl_core.embeddings.inputs.parts_rows`), keeps only the rows to embed, embeds
      -> write_parquet(<staging>/workers, schema=the table's)      write tasks
    SnapshotWriter.adopt(<staging>/workers) -> check -> publish   the driver

Every row carries its key columns (id, and entity for users and items) through every stage, so
nothing depends on row order. The staging folder is new for each snapshot and never live: Ray's
`write_parquet(mode="overwrite")` loses files when tasks race (ray#55043), and a write task that
is retried rewrites the file of its own task index, which `adopt` would catch as duplicate rows
if it did not. Users and items of an interactions version are built in the driver
(`input_batches`: a user's input is its whole history, a join over every interaction) and only
their embedding runs on the pool.

The staging folder must be on storage every node reaches (as the workspace already must be for
training checkpoints).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pyarrow as pa

from cl_core.config import ExportConfig
from cl_core.datasets import DatasetVersion
from cl_core.embeddings.inputs import input_batches, part_columns, part_ids, parts_rows, row_keys
from cl_core.embeddings.writer import SnapshotWriter, embedded_batch
from cl_core.modalities import modality

_EXPORT = ExportConfig()  # the export section's defaults: a RayEngine built without a config gets them
WORKERS_FOLDER = "workers"  # inside the staging folder: what Ray's write tasks write
ROWS_PER_BLOCK_IN_BATCHES = 4  # blocks handed to the actors hold at most this many batches


class _EmbedActor:
    """One actor of the pool: loads the model once, then embeds batch after batch."""

    def __init__(self, load: Callable[[], tuple[Any, int, str]], kind: str, schema: pa.Schema,
                 lineage: Mapping[str, str], created: datetime, only_ids: pa.Array | None) -> None:
        self.embed, dimension, _ = load()
        if dimension != schema.field("embedding").type.list_size:
            raise ValueError(f"the model loaded in the actor has dimension {dimension}, the table "
                             f"{schema.field('embedding').type.list_size}")
        self.kind, self.schema, self.lineage, self.created, self.only_ids = kind, schema, lineage, created, only_ids

    def __call__(self, batch: pa.Table) -> pa.Table:
        record = modality(self.kind)
        if record.rows_from_whole_version:  # rows built by the driver; the input travels as JSON
            rows = batch
            inputs = [json.loads(text) for text in rows.column(record.input_column).to_pylist()]
        else:
            rows = parts_rows(self.kind, batch, self.only_ids)
            inputs = rows.column(record.input_column).to_pylist()
        if rows.num_rows == 0:
            return self.schema.empty_table()
        keys = rows.combine_chunks().to_batches()[0]  # with_vectors takes the table's key columns by name
        return pa.Table.from_batches([embedded_batch(keys, self.embed, inputs, self.lineage, self.created, self.schema)])


def _driver_rows(dataset: DatasetVersion, batch_size: int, only_keys: pa.Array | None) -> list[pa.Table]:
    """The rows of a version whose rows are built from the whole of it (users and items), with
    the model's input as JSON text: one column type for every row (a user's input and an item's
    have different fields), and exactly the dicts the local engine passes to the model."""
    column = modality(dataset.kind).input_column
    tables = []
    for batch in input_batches(dataset, batch_size, only_ids=only_keys):
        encoded = pa.array([json.dumps(item, allow_nan=True) for item in batch.column(column).to_pylist()], pa.string())
        tables.append(pa.Table.from_batches([batch]).set_column(batch.schema.get_field_index(column), column, encoded))
    return tables


class RayEngine:
    """Embeds on a Ray Data actor pool of `actors` actors, `num_cpus` and `num_gpus` each; each
    actor calls `load()` once (`flows.table_runs.load_registered`: the concrete model version
    the driver resolved, from the driver's tracking URI). Joins `ray_address` (else
    $RAY_ADDRESS, else starts a local Ray, `flows.ray_edge.cluster.ensure_ray`)."""

    def __init__(self, load: Callable[[], tuple[Any, int, str]], *, actors: int = _EXPORT.actors, num_cpus: float = 1.0,
                 num_gpus: float = _EXPORT.num_gpus, ray_address: str | None = None) -> None:
        if actors < 1:
            raise ValueError(f"actors must be >= 1, got {actors}")
        self.load, self.actors, self.num_cpus, self.num_gpus, self.ray_address = load, actors, num_cpus, num_gpus, ray_address

    def embed_into(self, writer: SnapshotWriter, dataset: DatasetVersion, lineage: Mapping[str, str], *,
                   batch_size: int, only_keys: pa.Array | None = None,
                   progress: Callable[[int], None] | None = None) -> pa.ChunkedArray:
        import ray

        from flows.ray_edge.cluster import ensure_ray

        # A local Ray gets a CPU beyond the pool's for the read and write tasks: an actor pool
        # that holds every CPU leaves them none and the pipeline stalls.
        ensure_ray(self.ray_address, logical_cpus=int(self.actors * self.num_cpus) + 2)
        gpus = ray.cluster_resources().get("GPU", 0)
        if self.num_gpus > gpus:  # Ray Data would only warn and wait for a GPU node that never comes
            raise ValueError(f"export.num_gpus is {self.num_gpus:g} per actor, but the Ray cluster has {gpus:g} GPUs; "
                             f"set export.num_gpus: 0 to embed on CPU actors")
        if modality(dataset.kind).rows_from_whole_version:
            rows = _driver_rows(dataset, batch_size, only_keys)
            if not rows:
                return pa.chunked_array([], pa.string())
            source, only_ids = ray.data.from_arrow(rows), None
        else:
            source = ray.data.read_parquet([str(path) for path in dataset.files]).select_columns(part_columns(dataset))
            if only_keys is not None:  # pushed down into the Parquet scan: only these rows are read
                from ray.data.expressions import col

                source = source.filter(expr=col("id").is_in(part_ids(dataset.kind, only_keys).to_pylist()))
            only_ids = only_keys  # the actors keep exactly these (a pair may have changed in one sentence)
            # A version's part is read as one block, and one block reaches one actor: a one-part
            # version would be embedded by a single actor however big the pool. Streaming
            # repartition cuts blocks to a few batches each, so every actor gets work and a
            # retried block is small; it needs no barrier, unlike repartition(num_blocks).
            source = source.repartition(target_num_rows_per_block=batch_size * ROWS_PER_BLOCK_IN_BATCHES)
        created = datetime.now(UTC)
        embedded = source.map_batches(
            _EmbedActor,
            fn_constructor_args=(self.load, dataset.kind, writer.schema, dict(lineage), created, only_ids),
            compute=ray.data.ActorPoolStrategy(size=self.actors),
            batch_size=batch_size,
            batch_format="pyarrow",
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus or None,
            # Actors on as many nodes as the pool allows: each node's cores (and its share of
            # the reads) work, instead of every actor packed onto the first node with room.
            scheduling_strategy="SPREAD",
        )
        folder = writer.staging / WORKERS_FOLDER
        embedded.write_parquet(str(folder), schema=writer.schema)
        adopted = writer.adopt(folder)
        if progress:
            progress(adopted.num_rows)
        keys = row_keys(adopted)
        return keys if isinstance(keys, pa.ChunkedArray) else pa.chunked_array([keys], pa.string())


def ray_engine(model: dict[str, str], tracking_uri: str, export: ExportConfig,
               ray_address: str | None = None) -> RayEngine:
    """The engine for a resolved model (`flows.table_runs.resolve_model`) and the config's
    validated export section (actors, num_gpus)."""
    from flows.table_runs import load_registered

    # An actor that holds a GPU embeds on it; Ray sets its CUDA_VISIBLE_DEVICES, so "cuda" is that GPU.
    device = "cuda" if export.num_gpus > 0 else None
    return RayEngine(partial(load_registered, tracking_uri, {"name": model["name"], "version": model["version"]},
                             device), actors=export.actors, num_gpus=export.num_gpus, ray_address=ray_address)

