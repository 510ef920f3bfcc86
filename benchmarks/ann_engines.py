"""Nearest-neighbour engines side by side on the same vectors: recall@10 against exact search,
build time, query time, memory, and an incremental update (1 % rows added, 1 % removed).

    .venv/bin/python benchmarks/ann_engines.py [--rows 200000] [--engines all|NAME,...] [--queries 500]
    .venv/bin/python benchmarks/ann_engines.py --exact-sizes 10000,30000,100000   # where exact search is as fast

The vectors stand in for an embedding table: L2-normalised 128-d points in 2,000 clusters of
Zipf-distributed sizes, each cluster spread along its own random 16-d subspace plus isotropic
noise (embeddings lie near low-dimensional pieces of the sphere, unevenly populated). Queries are
fresh draws from the same mixture, not rows of the index. Scores are inner products (cosine on
unit vectors), what the table is trained and searched with.

Each engine runs in a fresh child process that generates the same seeded vectors, so its memory
is its own: `index MB` is the child's peak RSS (VmHWM, reset once the vectors and the exact
answers are made) minus its RSS at that moment, read before the update: the build, saving and
the queries. Query time is one query at a time (p50 / p99 over `--queries`), the
way a service asks; `exact ms` is numpy's matrix-vector product over the same rows (one BLAS
thread), timed in turn with the engine's query in the same child, so `ratio` (engine p50 ÷ exact
p50) compares them side by side. The update adds 1 % new
rows and removes 1 % old ones, timed against the full build, then recall is measured again.
Prints, never asserts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from _common import REPO, table

K = 10
SEED = 0


def clustered_vectors(n: int, dim: int, seed: int, clusters: int = 2000, subspace: int = 16) -> np.ndarray:
    """float32 (n, dim), unit rows: a Zipf-sized mixture of clusters, each along its own subspace."""
    mixture = np.random.default_rng(SEED)  # the clusters are the same for rows and queries
    centres = mixture.standard_normal((clusters, dim)).astype(np.float32)
    bases = mixture.standard_normal((clusters, subspace, dim)).astype(np.float32) / np.sqrt(dim)
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.8
    rng = np.random.default_rng(seed)
    which = rng.choice(clusters, size=n, p=weights / weights.sum())
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        c = which[start:start + 100_000]
        spread = rng.standard_normal((len(c), subspace)).astype(np.float32) * 2.0
        noise = 0.35 * rng.standard_normal((len(c), dim)).astype(np.float32)
        rows = centres[c] + np.einsum("ns,nsd->nd", spread, bases[c]) + noise
        out[start:start + len(c)] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) row numbers of the k highest inner products, by blocks of queries."""
    out = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), 64):
        scores = queries[start:start + 64] @ vectors.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1)
        out[start:start + 64] = np.take_along_axis(top, order, 1)
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


# ---- engines: build(vectors, keys), query(q, k) -> keys, update(add_vectors, add_keys, remove_keys) ----

class FaissHnsw:
    def __init__(self, dim: int, ef_search: int, m: int = 32, ef_construction: int = 80) -> None:
        import faiss
        self.index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self.index.hnsw.efSearch = ef_search
        self.keys = np.empty(0, np.int64)

    def build(self, vectors, keys):
        self.index.add(vectors)
        self.keys = keys.copy()

    def query(self, q, k):
        _, rows = self.index.search(q, k)
        return np.where(rows >= 0, self.keys[rows], -1)

    def update(self, add_vectors, add_keys, remove_keys):
        # HNSW in faiss cannot remove: the removed rows are masked at query time (a real table
        # would have to rebuild to reclaim them), the new rows added.
        self.index.add(add_vectors)
        self.keys = np.concatenate([np.where(np.isin(self.keys, remove_keys), -1, self.keys), add_keys])

    def save(self, path):
        import faiss
        faiss.write_index(self.index, str(path))


class FaissIvf:
    def __init__(self, dim: int, nprobe: int, nlist: int) -> None:
        import faiss
        self.quantizer = faiss.IndexFlatIP(dim)
        self.index = faiss.IndexIVFFlat(self.quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        self.index.nprobe = nprobe

    def build(self, vectors, keys):
        sample = vectors[np.random.default_rng(1).choice(len(vectors), min(len(vectors), 100_000), replace=False)]
        self.index.train(sample)
        self.index.add_with_ids(vectors, keys)

    def query(self, q, k):
        return self.index.search(q, k)[1]

    def update(self, add_vectors, add_keys, remove_keys):
        self.index.remove_ids(remove_keys)
        self.index.add_with_ids(add_vectors, add_keys)

    def save(self, path):
        import faiss
        faiss.write_index(self.index, str(path))


class Usearch:
    def __init__(self, dim: int, expansion_search: int, connectivity: int = 16, expansion_add: int = 128,
                 dtype: str = "f32") -> None:
        from usearch.index import Index
        self.index = Index(ndim=dim, metric="ip", dtype=dtype, connectivity=connectivity,
                           expansion_add=expansion_add, expansion_search=expansion_search)

    def build(self, vectors, keys):
        self.index.add(keys, vectors)

    def query(self, q, k):
        return np.asarray(self.index.search(q, k).keys, np.int64).reshape(len(q), -1)

    def update(self, add_vectors, add_keys, remove_keys):
        self.index.remove(remove_keys)
        self.index.add(add_keys, add_vectors)

    def save(self, path):
        self.index.save(str(path))


class Lance:
    def __init__(self, dim: int, kind: str, nprobes: int, refine: int, folder: Path) -> None:
        import lancedb
        self.db = lancedb.connect(str(folder))
        self.kind, self.nprobes, self.refine, self.dim = kind, nprobes, refine, dim

    def _rows(self, vectors, keys):
        import pyarrow as pa
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self.dim)
        return pa.table({"key": pa.array(keys), "vector": vectors})

    def build(self, vectors, keys):
        from lancedb.index import HnswSq, IvfPq
        self.table = self.db.create_table("bench", data=self._rows(vectors, keys))
        partitions = int(np.sqrt(len(vectors)))
        config = (IvfPq(distance_type="dot", num_partitions=partitions, num_sub_vectors=self.dim // 8)
                  if self.kind == "IVF_PQ" else HnswSq(distance_type="dot", num_partitions=max(1, partitions // 16)))
        self.table.create_index("vector", config=config)

    def query(self, q, k):
        out = np.full((len(q), k), -1, np.int64)
        for i, vector in enumerate(q):
            found = (self.table.search(vector).distance_type("dot").nprobes(self.nprobes).refine_factor(self.refine)
                     .limit(k).select(["key"]).to_arrow().column("key").to_numpy())
            out[i, :len(found)] = found
        return out

    def update(self, add_vectors, add_keys, remove_keys):
        self.table.delete(f"key IN ({','.join(map(str, remove_keys.tolist()))})")
        self.table.add(self._rows(add_vectors, add_keys))
        self.table.optimize()  # folds the new rows into the index (else they are scanned flat)

    def save(self, path):
        pass  # already on disk


def make_engine(name: str, dim: int, rows: int, folder: Path):
    engine, _, setting = name.partition(":")
    value = int(setting) if setting else 0
    if engine == "faiss-hnsw":
        return FaissHnsw(dim, ef_search=value or 64)
    if engine == "faiss-ivf":
        return FaissIvf(dim, nprobe=value or 16, nlist=int(4 * np.sqrt(rows)))
    if engine == "usearch":
        return Usearch(dim, expansion_search=value or 64)
    if engine == "usearch-c32":
        return Usearch(dim, expansion_search=value or 64, connectivity=32)
    if engine == "lance-ivfpq":
        return Lance(dim, "IVF_PQ", nprobes=value or 32, refine=10, folder=folder)
    if engine == "lance-hnswsq":
        return Lance(dim, "IVF_HNSW_SQ", nprobes=value or 8, refine=5, folder=folder)
    raise SystemExit(f"unknown engine {name!r}")


def run_one(name: str, rows: int, dim: int, queries: int) -> dict:
    vectors = clustered_vectors(rows, dim, seed=1)
    asked = clustered_vectors(queries, dim, seed=2)
    keys = np.arange(rows, dtype=np.int64) * 7 + 3  # keys are not row numbers, as in the table
    truth = keys[exact_top(vectors, asked, K)]
    with tempfile.TemporaryDirectory(prefix="ann-") as folder:
        engine = make_engine(name, dim, rows, Path(folder))  # its library is loaded before the baseline
        # The peak so far is making the vectors (einsum's temporaries): reset it, so VmHWM - base is
        # what building, saving and querying the index took (Linux: clear_refs 5 resets VmHWM).
        Path("/proc/self/clear_refs").write_text("5")
        base = rss_mb("VmRSS")
        started = time.perf_counter()
        engine.build(vectors, keys)
        build_s = time.perf_counter() - started
        engine.save(Path(folder) / "index")
        disk_mb = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**20
        found = engine.query(asked, K)
        # one query at a time, the engine and numpy's exact search in turn: side by side. numpy on
        # one BLAS thread, as a single query is answered by the engines (no thread pool to share).
        times, exact_ms = [], []
        with threadpool_limits(limits=1, user_api="blas"):
            for vector in asked:
                started = time.perf_counter()
                engine.query(vector[None, :], K)
                times.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                np.argpartition(-(vectors @ vector), K)[:K]
                exact_ms.append((time.perf_counter() - started) * 1000)
        index_mb = rss_mb("VmHWM") - base  # before the update's new vectors and answers are made
        before_update = recall(found, truth)
        # the update: 1 % new rows, 1 % of the old removed
        step = max(1, rows // 100)
        new_vectors = clustered_vectors(step, dim, seed=3)
        new_keys = np.arange(step, dtype=np.int64) * 7 + 3 + rows * 7
        removed = keys[np.random.default_rng(4).choice(rows, step, replace=False)]
        started = time.perf_counter()
        engine.update(new_vectors, new_keys, removed)
        update_s = time.perf_counter() - started
        kept = ~np.isin(keys, removed)
        all_vectors = np.concatenate([vectors[kept], new_vectors])
        all_keys = np.concatenate([keys[kept], new_keys])
        after_truth = all_keys[exact_top(all_vectors, asked, K)]
        after_update = recall(engine.query(asked, K), after_truth)
    return {
        "engine": name, "rows": rows, "build_s": build_s, "recall": before_update, "recall_after_update": after_update,
        "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
        "exact_p50_ms": float(np.percentile(exact_ms, 50)), "index_mb": index_mb, "disk_mb": disk_mb,
        "update_s": update_s,
    }


def exact_sizes(sizes: list[int], dim: int) -> list[tuple]:
    """Single-query exact search time and usearch's at each size: where exact is as fast."""
    out = []
    asked = clustered_vectors(200, dim, seed=2)
    for n in sizes:
        vectors = clustered_vectors(n, dim, seed=1)
        exact = []
        with threadpool_limits(limits=1, user_api="blas"):
            for vector in asked:
                started = time.perf_counter()
                np.argpartition(-(vectors @ vector), K)[:K]
                exact.append((time.perf_counter() - started) * 1000)
        engine = Usearch(dim, expansion_search=64)
        started = time.perf_counter()
        engine.build(vectors, np.arange(n, dtype=np.int64))
        build_s = time.perf_counter() - started
        ann = []
        for vector in asked:
            started = time.perf_counter()
            engine.query(vector[None, :], K)
            ann.append((time.perf_counter() - started) * 1000)
        out.append((n, f"{np.median(exact):.3f}", f"{np.median(ann):.3f}", f"{build_s:.1f}"))
    return out


ALL = ("faiss-hnsw:64", "faiss-hnsw:128", "faiss-ivf:16", "faiss-ivf:64", "usearch:64", "usearch:128", "usearch-c32:128",
       "lance-ivfpq:32", "lance-hnswsq:8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--engines", default="all", help="comma-separated NAME[:search setting], or all: " + ",".join(ALL))
    parser.add_argument("--exact-sizes", default="", help="comma-separated row counts: exact vs usearch query time")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.rows, args.dim, args.queries)))
        return
    if args.exact_sizes:
        rows = exact_sizes([int(n) for n in args.exact_sizes.split(",")], args.dim)
        print(table(rows, ("rows", "exact p50 ms", "usearch p50 ms", "usearch build s")))
        return
    names = ALL if args.engines == "all" else tuple(args.engines.split(","))
    results = []
    for name in names:
        done = subprocess.run([sys.executable, __file__, "--one", name, "--rows", str(args.rows), "--dim", str(args.dim),
                               "--queries", str(args.queries)], capture_output=True, text=True, cwd=REPO / "benchmarks")
        if done.returncode != 0:
            print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    rows = [(r["engine"], r["rows"], f"{r['build_s']:.1f}", f"{r['recall']:.3f}", f"{r['p50_ms']:.3f} / {r['p99_ms']:.3f}",
             f"{r['exact_p50_ms']:.2f}", f"{r['p50_ms'] / r['exact_p50_ms']:.3f}", f"{r['index_mb']:.0f}",
             f"{r['disk_mb']:.0f}", f"{r['update_s']:.2f} ({r['update_s'] / r['build_s']:.3f})",
             f"{r['recall_after_update']:.3f}") for r in results]
    print(table(rows, ("engine:search", "rows", "build s", "recall@10", "query p50 / p99 ms", "exact ms", "ratio",
                       "index MB", "disk MB", "update s (÷ build)", "recall after")))


if __name__ == "__main__":
    main()
