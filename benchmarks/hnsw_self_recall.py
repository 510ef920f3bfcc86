"""How often a usearch HNSW graph fails to find a row by the row's own vector, built on every core
(usearch's default) against built on one thread: what `cl_core/embeddings/vector_index.py`'s
ONE_THREAD_MAX_ROWS rests on.

    .venv/bin/python benchmarks/hnsw_self_recall.py

The 60-row table of tests/cl_core/embeddings/test_snapshot_index.py (8-d unit vectors), built 200
times each way, and clustered 64-d unit vectors (20k rows round 200 centres, 200k round 500, noise
0.3, seed 0), built once each way; the graph settings are the snapshots' (connectivity 16,
expansion 128). A miss: the first hit of a row's own vector is another row. Threaded insertion is
not deterministic: the counts change from run to run. Prints, never asserts.
"""

from __future__ import annotations

import time

import numpy as np
from usearch.index import Index

from cl_core.embeddings.vector_index import CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH
from tests.cl_core.embeddings.conftest import png
from tests.cl_core.embeddings.test_snapshot_index import spread_embed

from _common import table


def misses(vectors: np.ndarray, threads: int) -> tuple[int, float]:
    """(rows whose own vector finds another row first, build seconds) of one graph."""
    keys = np.arange(len(vectors), dtype=np.uint64)
    index = Index(ndim=vectors.shape[1], metric="ip", dtype="f32", connectivity=CONNECTIVITY,
                  expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)
    started = time.perf_counter()
    index.add(keys, vectors, threads=threads)
    built = time.perf_counter() - started
    found = np.asarray(index.search(vectors, 1).keys).reshape(-1)
    return int((found != keys).sum()), built


def clustered(rows: int, centres: int, dimension: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    points = rng.standard_normal((centres, dimension))
    vectors = (points[rng.integers(0, centres, rows)] + 0.3 * rng.standard_normal((rows, dimension))).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def main() -> None:
    small = spread_embed([png(value) for value in range(60)])
    results = []
    for threads, name in ((0, "every core"), (1, "one thread")):
        missed = sum(misses(small, threads)[0] for _ in range(200))
        results.append(("60 rows x 200 builds", name, f"{missed} of {200 * 60}", "-"))
    for rows, centres in ((20_000, 200), (200_000, 500)):
        vectors = clustered(rows, centres)
        for threads, name in ((0, "every core"), (1, "one thread")):
            missed, built = misses(vectors, threads)
            results.append((f"{rows:,} rows", name, f"{missed} of {rows:,}", f"{built:.1f}"))
    print(table(results, ("graph", "insertion", "rows missed by their own vector", "build s")))


if __name__ == "__main__":
    main()
