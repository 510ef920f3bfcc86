"""Exact and HNSW nearest neighbours by inner product, keyed by the rows' ids."""

from __future__ import annotations

import numpy as np
import pytest

from cl_core.embeddings.vector_index import MISSING, ExactIndex, HnswIndex, row_keys


def clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((20, dim))
    rows = centres[rng.integers(0, 20, n)] + 0.4 * rng.standard_normal((n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def naive_top(vectors: np.ndarray, keys: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scored = sorted(((float(v @ query), int(key)) for v, key in zip(vectors, keys, strict=True)), key=lambda s: -s[0])
    return [key for _, key in scored[:k]]


def test_row_keys_are_stable_distinct_and_fit_int64():
    keys = row_keys(f"img{i}" for i in range(20_000))
    assert keys.dtype == np.int64 and (keys >= 0).all() and len(np.unique(keys)) == 20_000
    assert row_keys(["img7"])[0] == keys[7]  # the same id, the same key, in any call
    assert row_keys([7])[0] == row_keys(["7"])[0]  # ids are compared as text


def test_exact_search_ranks_as_a_naive_loop_and_pads_a_short_answer():
    vectors, keys = clustered(50), np.arange(50, dtype=np.int64) * 3
    index = ExactIndex(32)
    index.add(keys, vectors)
    queries = clustered(5, seed=1)
    found, scores = index.search(queries, 7)
    for query, row, row_scores in zip(queries, found, scores, strict=True):
        assert row.tolist() == naive_top(vectors, keys, query, 7)
        assert np.all(np.diff(row_scores) <= 1e-6)
        assert np.allclose(row_scores, [vectors[key // 3] @ query for key in row], atol=1e-5)
    short, short_scores = index.search(queries[0], 60)
    assert (short[0, 50:] == MISSING).all() and np.isneginf(short_scores[0, 50:]).all()
    assert np.array_equal(index.get(np.array([6, 5])), np.vstack([vectors[2], np.full(32, np.nan, np.float32)]),
                          equal_nan=True)


def test_hnsw_finds_what_exact_search_finds():
    vectors, keys = clustered(3000), row_keys(f"r{i}" for i in range(3000))
    exact, graph = ExactIndex(32), HnswIndex.new(32)
    exact.add(keys, vectors)
    graph.add(keys, vectors)
    queries = clustered(100, seed=2)
    truth, _ = exact.search(queries, 10)
    found, scores = graph.search(queries, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.95
    assert np.allclose(scores[:, 0], np.einsum("qd,qd->q", queries, graph.get(found[:, 0])), atol=1e-5)


def test_hnsw_removes_adds_and_round_trips_through_a_file(tmp_path):
    vectors, keys = clustered(600), row_keys(f"r{i}" for i in range(600))
    graph = HnswIndex.new(32)
    graph.add(keys, vectors)
    removed = keys[:100]
    assert graph.remove(removed) == 100 and len(graph) == 500
    graph.add(keys[:10], -vectors[:10])  # ten ids come back with other vectors
    found, _ = graph.search(vectors[:100], 20)
    assert not np.isin(found, removed[10:]).any()
    assert np.allclose(graph.get(keys[:1])[0], -vectors[0])
    graph.save(tmp_path / "g.usearch")
    for view in (False, True):
        loaded = HnswIndex.load(tmp_path / "g.usearch", view=view)
        assert len(loaded) == 510 and sorted(loaded.keys.tolist()) == sorted(graph.keys.tolist())
        assert np.array_equal(loaded.search(vectors[200:210], 5)[0], graph.search(vectors[200:210], 5)[0])
    assert np.isnan(graph.get(keys[50:51])).all()
    # a single query: usearch answers it in another shape. The graph is approximate (and built on
    # threads), so the answer is compared with the same query asked as a batch, not with the row.
    one, one_scores = graph.search(vectors[300], 3)
    batch, batch_scores = graph.search(vectors[300:301], 3)
    assert one.shape == (1, 3) and np.array_equal(one, batch) and np.allclose(one_scores, batch_scores)


def test_loading_a_file_that_is_not_an_index_fails(tmp_path):
    (tmp_path / "bad.usearch").write_bytes(b"not an index at all" * 10)
    with pytest.raises((ValueError, RuntimeError)):
        HnswIndex.load(tmp_path / "bad.usearch")


@pytest.mark.parametrize("index", [ExactIndex(4), HnswIndex.new(4)], ids=["exact", "hnsw"])
def test_a_query_of_another_dimension_is_refused(index):
    with pytest.raises(ValueError, match=r"\(4,\) or \(Q, 4\)"):
        index.search(np.zeros(3, np.float32), 1)


def test_a_small_graph_finds_each_of_its_rows_every_time_it_is_built():
    """Threaded insertion left about 1 % of a 60-row graph's rows unreachable (their own vector
    found another row first), so graphs of up to ONE_THREAD_MAX_ROWS rows are built on one thread."""
    vectors = np.random.default_rng(3).standard_normal((60, 8)).astype(np.float32)
    keys = row_keys(f"r{i}" for i in range(60))
    for _ in range(40):
        index = HnswIndex.new(8)
        index.add(keys, vectors)
        found, _ = index.search(vectors, 1)
        assert (found[:, 0] == keys).all()
