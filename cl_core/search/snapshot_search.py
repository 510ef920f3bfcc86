"""A published snapshot opened for search: one index per group of rows, and the rows' columns.

A group is every row of an image or text table ("rows"), or one entity of a recommender's
("user", "item"). A group the manifest records with a graph is opened from its file, mapped
rather than read (`snapshot_index.open_group` checks its size, hash and key count first); a
small group, or any group of a snapshot published before snapshots carried an index, is searched
exactly over its vectors, read here.

The rows' other columns (split, label, text or title, entity) are held in memory to name what
was found; the vectors of a graph's group are not (the graph holds them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cl_core.datasets.content_hash import CONTENT_SHA256
from cl_core.embeddings.errors import EmbeddingTableError
from cl_core.embeddings.schema import LINEAGE_COLUMNS
from cl_core.embeddings.snapshot_index import ROWS_GROUP, open_group
from cl_core.embeddings.table import EmbeddingTable, Snapshot
from cl_core.embeddings.vector_index import MISSING, ExactIndex, HnswIndex, row_keys

MAX_K = 1000  # the most neighbours one query may ask for
_NOT_SHOWN = {"embedding", "created_at", CONTENT_SHA256, *LINEAGE_COLUMNS}


class UnknownIdError(LookupError):
    """An id the snapshot has no row for (in the group searched); the message names it."""


@dataclass(frozen=True)
class Hit:
    rank: int
    id: str
    score: float
    row: dict[str, Any] = field(default_factory=dict)  # the row's other columns: split, label, text, title

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "id": self.id, "score": self.score, **self.row}


@dataclass
class _Group:
    index: ExactIndex | HnswIndex
    rows: pa.Table  # the group's shown columns, in table order
    sorted_keys: np.ndarray  # the rows' keys, sorted, and where each sits in `rows`
    positions: np.ndarray

    def position(self, keys: np.ndarray) -> np.ndarray:
        """Row numbers in `rows` of `keys`; -1 where a key is not in the group."""
        if len(self.sorted_keys) == 0:
            return np.full(len(keys), -1, np.int64)
        at = np.searchsorted(self.sorted_keys, keys).clip(0, len(self.sorted_keys) - 1)
        return np.where(self.sorted_keys[at] == keys, self.positions[at], -1)


class SnapshotSearch:
    """Search one snapshot. `groups` names its groups; `default_group` is the one searched when
    none is named ("rows", or "item" for a recommender)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        record = (snapshot.manifest.index or {}).get("groups", {})
        schema = snapshot.dataset().schema
        shown = [name for name in schema.names if name not in _NOT_SHOWN]
        exact = [g for g, entry in record.items() if entry.get("engine") != HnswIndex.engine] if record else None
        needs_vectors = exact is None or bool(exact)
        table = snapshot.read([*shown, *(["embedding"] if needs_vectors else [])])
        grouped = "entity" in shown
        names = list(dict.fromkeys(table.column("entity").to_pylist())) if grouped else [ROWS_GROUP]
        self.groups: dict[str, _Group] = {}
        for name in names:
            rows = table.filter(pc.equal(table.column("entity"), name)) if grouped else table
            keys = row_keys(rows.column("id").to_pylist())
            order = np.argsort(keys, kind="stable")
            entry = record.get(name, {})
            if entry.get("engine") == HnswIndex.engine:
                index: ExactIndex | HnswIndex = open_group(snapshot.path, name, entry, view=True)
            else:
                index = ExactIndex(snapshot.manifest.dimension)
                index.add(keys, _vectors(rows))
            self.groups[name] = _Group(index, rows.select(shown), keys[order], order)
        self.default_group = "item" if "item" in self.groups else (names[0] if names else ROWS_GROUP)

    @property
    def dimension(self) -> int:
        return self.snapshot.manifest.dimension

    def _group(self, group: str | None) -> _Group:
        name = group or self.default_group
        if name not in self.groups:
            raise ValueError(f"snapshot {self.snapshot.id} has no group {name!r}; it has {sorted(self.groups)}")
        return self.groups[name]

    def vectors_of(self, ids: Sequence[str], group: str | None = None) -> np.ndarray:
        """float32 (len(ids), D): the table's vectors of `ids`.

        Raises:
            UnknownIdError: an id has no row in the group; the message names it and the snapshot.
        """
        chosen = self._group(group)
        keys = row_keys(ids)
        missing = [i for i, p in zip(ids, chosen.position(keys), strict=True) if p < 0]
        if missing:
            m = self.snapshot.manifest
            raise UnknownIdError(f"id {missing[0]!r} has no row in snapshot {self.snapshot.id} of {m.model_name} "
                                 f"v{m.model_version} on {m.dataset_name}@{m.dataset_version}"
                                 + (f" ({group or self.default_group})" if len(self.groups) > 1 else ""))
        return chosen.index.get(keys)

    def rows_of(self, ids: Sequence[str], group: str | None = None) -> list[dict[str, Any] | None]:
        """The shown columns of each of `ids`' rows (id included); None for an id without one."""
        chosen = self._group(group)
        positions = chosen.position(row_keys(ids))
        found = chosen.rows.take(pa.array(np.maximum(positions, 0))).to_pylist() if len(chosen.rows) else [None] * len(ids)
        return [row if p >= 0 else None for row, p in zip(found, positions, strict=True)]

    def by_vectors(self, queries: np.ndarray, k: int = 10, group: str | None = None,
                   exclude: Iterable[Iterable[str]] | None = None) -> list[list[Hit]]:
        """The k rows of `group` most cosine-similar to each query (Q, D), best first.
        `exclude`: per query, ids to leave out (a user's items, the query's own row).

        Raises:
            ValueError: k outside 1..MAX_K, or queries of another dimension.
        """
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.dimension:
            raise ValueError(f"snapshot {self.snapshot.id} holds {self.dimension}-d vectors; the query has shape "
                             f"{tuple(queries.shape)}")
        if not np.isfinite(queries).all():
            raise ValueError("the query vector holds a NaN or an infinity")
        chosen = self._group(group)
        excluded = [row_keys(ids) for ids in exclude] if exclude is not None else [np.empty(0, np.int64)] * len(queries)
        if len(excluded) != len(queries):
            raise ValueError(f"exclude names {len(excluded)} queries' ids, there are {len(queries)} queries")
        wanted = min(k + max((len(e) for e in excluded), default=0), len(chosen.index))
        keys, scores = chosen.index.search(queries, max(wanted, 1))
        answers = []
        for query_keys, query_scores, leave_out in zip(keys, scores, excluded, strict=True):
            keep = (query_keys != MISSING) & ~np.isin(query_keys, leave_out)
            found_keys, found_scores = query_keys[keep][:k], query_scores[keep][:k]
            positions = chosen.position(found_keys)
            rows = chosen.rows.take(pa.array(positions)).to_pylist() if len(positions) else []
            answers.append([Hit(rank, str(row.pop("id")), float(score), row)
                            for rank, (row, score) in enumerate(zip(rows, found_scores, strict=True), start=1)])
        return answers

    def by_ids(self, ids: Sequence[str], k: int = 10, group: str | None = None) -> list[list[Hit]]:
        """The k nearest rows to each of the table's rows `ids`, leaving the row itself out."""
        return self.by_vectors(self.vectors_of(ids, group), k, group, exclude=[[i] for i in ids])

    def describe(self) -> dict[str, Any]:
        m = self.snapshot.manifest
        return {"snapshot": self.snapshot.id, "model": {"name": m.model_name, "version": m.model_version},
                "dataset": {"name": m.dataset_name, "version": m.dataset_version},
                "groups": {name: {"rows": len(g.rows), "engine": g.index.engine} for name, g in self.groups.items()}}


def _vectors(rows: pa.Table) -> np.ndarray:
    column = rows.column("embedding").combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(rows), -1)


def open_current_search(embeddings_root: str | Path, model_name: str, dataset_name: str) -> SnapshotSearch:
    """The CURRENT snapshot of a table, opened for search.

    Raises:
        EmbeddingTableError: no snapshot was published yet, or its index is missing or corrupt.
    """
    table = EmbeddingTable(embeddings_root, model_name, dataset_name)
    snapshot = table.current()
    if snapshot is None:
        raise EmbeddingTableError(f"no embedding table for model {model_name!r} and dataset {dataset_name!r} at {table.path}")
    return SnapshotSearch(snapshot)
