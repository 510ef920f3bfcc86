"""Who computes the vectors of a snapshot: this process (`LocalEngine`) or something that
writes part files into the snapshot's staging folder for `SnapshotWriter.adopt` (the Ray Data
engine, `flows.ray_edge.embed`). Either way the writer counts, checks and publishes the snapshot, so
the engines differ only in where the rows are embedded."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

import pyarrow as pa

from cl_core.datasets import DatasetVersion
from cl_core.embeddings.inputs import input_batches, input_column, row_keys
from cl_core.embeddings.writer import Embed, SnapshotWriter, write_embedded


@runtime_checkable
class EmbedEngine(Protocol):
    def embed_into(self, writer: SnapshotWriter, dataset: DatasetVersion, lineage: Mapping[str, str], *,
                   batch_size: int, only_keys: pa.Array | None = None,
                   progress: Callable[[int], None] | None = None) -> pa.ChunkedArray:
        """Embed the table rows of `dataset` (only those whose row key, `inputs.row_keys`, is in
        `only_keys` when given) into `writer`, with `lineage` (model name and version, dataset
        version); return the row keys written."""
        ...


class LocalEngine:
    """Embeds in this process, `batch_size` rows per call of `embed`."""

    def __init__(self, embed: Embed) -> None:
        self.embed = embed

    def embed_into(self, writer: SnapshotWriter, dataset: DatasetVersion, lineage: Mapping[str, str], *,
                   batch_size: int, only_keys: pa.Array | None = None,
                   progress: Callable[[int], None] | None = None) -> pa.ChunkedArray:
        keys: list[pa.Array] = []

        def seen(batches):
            for batch in batches:
                keys.append(row_keys(batch))
                yield batch

        write_embedded(seen(input_batches(dataset, batch_size, only_ids=only_keys)), self.embed, writer,
                       input_column(dataset), lineage, progress=progress)
        return pa.chunked_array(keys, pa.string())


def as_engine(embed: Embed | EmbedEngine) -> EmbedEngine:
    """An engine as it is; a plain embed function (a list of inputs -> (N, D)) runs locally."""
    return embed if isinstance(embed, EmbedEngine) else LocalEngine(embed)
