"""Nearest neighbours by cosine similarity over a set of keyed vectors: exact, or an HNSW graph.

Cosine is the score every model here is evaluated with (kNN, STS, retrieval; a recommender's
vectors are unit length already): vectors are scaled to unit length as they are added and queries
as they are asked, and the score is their inner product. Keys are 63-bit integers derived from the row's id
(`row_keys`), so an index survives the rows moving between snapshots: an incremental snapshot
updates its parent's index by key (remove the changed and deleted rows, add the new ones).

    index = HnswIndex.new(dimension)
    index.add(row_keys(ids), vectors)
    keys, scores = index.search(queries, k)     # (Q, k) each, best first; key -1 where fewer than k
    index.save(path); HnswIndex.load(path)

The HNSW graph is usearch's: of the engines tried it alone adds and removes by key in place
(faiss's HNSW cannot remove); `benchmarks/ann_engines.py` compares them (docs/search.md). Small tables
are searched exactly (`ExactIndex`): a matrix-vector product over a few thousand rows takes as
long as a graph walk and is never wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

MISSING = -1  # the key of an empty slot in a search's answer
# HNSW settings: the graph's degree, the candidate list while inserting, and while searching
# (expansion 64, usearch's default, gave recall@10 below 0.95 in small trials; 128 is the setting
# benchmarks/ann_engines.py measures as usearch:128).
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 128
ADD_BATCH = 65_536  # rows added at a time: usearch copies each batch, so memory stays bounded
# Rows added at once up to which the graph is built on one thread. usearch 2.26's threaded insertion
# leaves some rows unreachable (a search for a row's own vector misses it): 79 of 12,000 such
# searches on 200 builds of 60 rows (a test's table), 7 of 20,000 on 20k rows; on one thread none,
# for 1.0 s instead of 0.5 s at 20k on 2 cores (benchmarks/hnsw_self_recall.py). At 200k rows one
# thread still misses 112 rows (threaded: 135), the approximate search's own recall, so larger adds
# keep every core.
ONE_THREAD_MAX_ROWS = 50_000


def row_keys(ids: Iterable[str]) -> np.ndarray:
    """int64 (N,) keys of row ids: the first 63 bits of blake2b(id), the same in every process and
    snapshot; 63 bits so that they fit a signed int64 and never equal MISSING."""
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8).digest(), "big") >> 1 for i in ids),
        dtype=np.int64)


def _unit_rows(queries: np.ndarray, dimension: int) -> np.ndarray:
    """(Q, dimension) float32 rows of unit length (a zero row stays zero)."""
    queries = np.array(queries, dtype=np.float32, ndmin=1)
    if queries.ndim == 1:
        queries = queries[None, :]
    if queries.ndim != 2 or queries.shape[1] != dimension:
        raise ValueError(f"queries must be ({dimension},) or (Q, {dimension}); got shape {queries.shape}")
    norms = np.linalg.norm(queries, axis=1, keepdims=True)
    return np.ascontiguousarray(queries / np.where(norms > 0, norms, 1.0))


class ExactIndex:
    """Every vector scored: (N, D) in memory, for small tables."""

    engine = "exact"

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.keys = np.empty(0, np.int64)
        self.vectors = np.empty((0, dimension), np.float32)

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.keys = np.concatenate([self.keys, np.asarray(keys, np.int64)])
        self.vectors = np.concatenate([self.vectors, _unit_rows(vectors, self.dimension)])

    def get(self, keys: np.ndarray) -> np.ndarray:
        """(len(keys), D) vectors, at unit length; a key the index lacks gives a row of NaN."""
        order = np.argsort(self.keys)
        at = np.searchsorted(self.keys, keys, sorter=order).clip(0, max(len(self.keys) - 1, 0))
        rows = order[at] if len(order) else np.zeros(len(keys), np.int64)
        found = (self.keys[rows] == keys) if len(self.keys) else np.zeros(len(keys), bool)
        out = np.full((len(keys), self.dimension), np.nan, np.float32)
        out[found] = self.vectors[rows[found]]
        return out

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = _unit_rows(queries, self.dimension)
        keys = np.full((len(queries), k), MISSING, np.int64)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        n = min(k, len(self.keys))
        if n == 0:
            return keys, scores
        for start in range(0, len(queries), 256):
            block = queries[start:start + 256] @ self.vectors.T
            top = np.argpartition(-block, n - 1, axis=1)[:, :n] if n < len(self.keys) else np.argsort(-block, axis=1)
            top.sort(axis=1)  # table order first, so that the stable sort below keeps ties in table order
            best = np.take_along_axis(block, top, 1)
            order = np.argsort(-best, axis=1, kind="stable")
            keys[start:start + len(block), :n] = self.keys[np.take_along_axis(top, order, 1)]
            scores[start:start + len(block), :n] = np.take_along_axis(best, order, 1)
        return keys, scores


class HnswIndex:
    """usearch's HNSW graph over inner products; `add`, `remove`, `search`, `save`, `load`."""

    engine = "usearch-hnsw"

    def __init__(self, index) -> None:
        self._index = index
        self.dimension = int(index.ndim)

    @classmethod
    def new(cls, dimension: int) -> HnswIndex:
        from usearch.index import Index

        return cls(Index(ndim=dimension, metric="ip", dtype="f32", connectivity=CONNECTIVITY,
                         expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH))

    @classmethod
    def load(cls, path: Path, view: bool = False) -> HnswIndex:
        """The index saved at `path`; `view` maps the file instead of reading it (pages shared
        between processes that view the same file, nothing to add or remove).

        Raises:
            ValueError: the file is not a usearch index.
        """
        from usearch.index import Index

        index = Index.restore(str(path), view=view)
        if index is None:
            raise ValueError(f"{path} is not a usearch index")
        index.expansion_search = EXPANSION_SEARCH
        return cls(index)

    @property
    def keys(self) -> np.ndarray:
        return np.asarray(self._index.keys, dtype=np.int64) if len(self._index) else np.empty(0, np.int64)

    def __len__(self) -> int:
        return len(self._index)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        keys = np.asarray(keys, np.int64)
        vectors = _unit_rows(vectors, self.dimension)
        threads = 1 if len(keys) <= ONE_THREAD_MAX_ROWS else 0  # 0: usearch's default, every core
        for start in range(0, len(keys), ADD_BATCH):
            self._index.add(keys[start:start + ADD_BATCH].astype(np.uint64), vectors[start:start + ADD_BATCH],
                            threads=threads)

    def remove(self, keys: np.ndarray) -> int:
        if len(keys) == 0:
            return 0
        return int(self._index.remove(np.asarray(keys, np.int64).astype(np.uint64)))

    def get(self, keys: np.ndarray) -> np.ndarray:
        """(len(keys), D) vectors, at unit length; a key the index lacks gives a row of NaN."""
        out = np.full((len(keys), self.dimension), np.nan, np.float32)
        for row, key in enumerate(np.asarray(keys, np.int64)):
            vector = self._index.get(int(key))
            if vector is not None:
                out[row] = np.asarray(vector, np.float32).reshape(-1)
        return out

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = _unit_rows(queries, self.dimension)
        keys = np.full((len(queries), k), MISSING, np.int64)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        if len(self._index) == 0:
            return keys, scores
        found = self._index.search(queries, k)
        # usearch answers one query with `Matches` (no counts: all its keys are found), several with `BatchMatches`
        counts = np.asarray(found.counts).reshape(-1) if hasattr(found, "counts") else np.array([len(found.keys)])
        found_keys = np.asarray(found.keys).reshape(len(queries), -1)
        found_distances = np.asarray(found.distances, np.float32).reshape(len(queries), -1)
        for row, count in enumerate(counts):
            keys[row, :count] = found_keys[row, :count].astype(np.int64)
            scores[row, :count] = 1.0 - found_distances[row, :count]  # usearch's "ip" distance is 1 - dot
        return keys, scores

    def save(self, path: Path) -> None:
        self._index.save(str(path))
