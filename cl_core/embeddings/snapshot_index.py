"""The nearest-neighbour index of one snapshot, built in its staging folder before it is published.

    <snapshot>/index/<group>.usearch      one HNSW graph per group of rows
    manifest.json "index"                 what was built: per group its engine, rows, file, size
                                          and sha256; how (full, or updated from the parent)

A group is every row of an image or text table ("rows"), or one entity of a recommender's table
("user", "item"), so that a user's vector searches items only. A group of at most
`exact_max_rows` rows gets no file: it is searched exactly (`vector_index.ExactIndex`), as fast
at that size. `SnapshotWriter.publish` builds the index after the parts are written and before
the manifest, so CURRENT moves only once both are complete and checked (one key per row).

The graph is built in a child process (`python -m cl_core.embeddings.snapshot_index`): it holds
the group's vectors and the graph (about 1.3x the vectors' bytes), and the writer's own memory
stays flat whatever the table's size. An incremental snapshot (its first `reused` rows copied
from the parent) starts from the parent's graph when the parent has a sound one and at most
`UPDATE_MAX_FRACTION` of the rows changed: it removes the parent's keys that were not reused
(deleted or changed rows) and adds the rows embedded since; otherwise it builds anew.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as ds

from cl_core.defaults import EXACT_SEARCH_MAX_ROWS
from cl_core.embeddings.errors import EmbeddingTableError
from cl_core.embeddings.vector_index import ExactIndex, HnswIndex, row_keys

INDEX_FOLDER = "index"
ROWS_GROUP = "rows"  # the one group of a table without an entity column
EXACT_MAX_ROWS = EXACT_SEARCH_MAX_ROWS  # the config's export.exact_search_max_rows, cl_core/defaults.py says why
# Beyond this share of changed rows a graph is rebuilt rather than updated: removals leave holes
# that a rebuild closes, and a rebuild costs little more than such an update.
UPDATE_MAX_FRACTION = 0.2


@dataclass(frozen=True)
class IndexSettings:
    exact_max_rows: int = EXACT_MAX_ROWS
    update_max_fraction: float = UPDATE_MAX_FRACTION


def group_counts(folder: Path, files: list[str]) -> dict[str, int]:
    """Rows per group of the snapshot's parts."""
    counts: dict[str, int] = {}
    for group, keys, _ in _group_batches(folder, files, vectors=False):
        counts[group] = counts.get(group, 0) + len(keys)
    return counts


def _group_batches(folder: Path, files: list[str], vectors: bool = True):
    """(group, ids, vectors or None) for each part batch and group, in table order."""
    dataset = ds.dataset([str(folder / name) for name in files], format="parquet")
    grouped = "entity" in dataset.schema.names
    columns = [*(["entity"] if grouped else []), "id", *(["embedding"] if vectors else [])]
    for batch in dataset.to_batches(columns=columns, batch_size=65_536):
        ids = np.asarray(batch.column("id").to_pylist(), dtype=object)
        matrix = None
        if vectors:
            column = batch.column("embedding")
            matrix = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(ids), -1)
        if not grouped:
            yield ROWS_GROUP, ids, matrix
            continue
        entities = np.asarray(batch.column("entity").to_pylist(), dtype=object)
        for group in dict.fromkeys(entities.tolist()):
            take = entities == group
            yield group, ids[take], (matrix[take] if matrix is not None else None)


def index_record(folder: Path, files: list[str], settings: IndexSettings, parent: Path | None = None,
                 parent_record: dict | None = None, reused: int = 0) -> dict[str, Any]:
    """Build the snapshot's index inside `folder` (a staging folder holding `files`) and return
    the manifest's record of it. Groups above `settings.exact_max_rows` rows get a graph, built in
    a child process; the others are exact and need nothing built.

    Raises:
        EmbeddingTableError: the build failed (the child's last error line is in the message) or
            the index does not hold one key per row.
    """
    counts = group_counts(folder, files)
    if all(n <= settings.exact_max_rows for n in counts.values()):
        return {"groups": {g: {"engine": ExactIndex.engine, "rows": n} for g, n in counts.items()}}
    command = [sys.executable, "-m", "cl_core.embeddings.snapshot_index", str(folder), "--files", *files,
               "--exact-max-rows", str(settings.exact_max_rows), "--update-max-fraction", str(settings.update_max_fraction)]
    if parent is not None and parent_record:
        command += ["--parent", str(parent), "--parent-record", json.dumps(parent_record), "--reused", str(reused)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise EmbeddingTableError(f"the nearest-neighbour index of {folder} could not be built: {last}; not published")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _parent_graph(parent: Path, record: dict | None, group: str) -> HnswIndex | None:
    """The parent's graph for `group`, loaded into memory, or None when it has none or it is not
    sound (then the group is built anew)."""
    entry = ((record or {}).get("groups") or {}).get(group) or {}
    if entry.get("engine") != HnswIndex.engine:
        return None
    try:
        return open_group(parent, group, entry, view=False)
    except EmbeddingTableError:
        return None


def build(folder: Path, files: list[str], settings: IndexSettings, parent: Path | None, parent_record: dict | None,
          reused: int) -> dict[str, Any]:
    """The child's work: every group's graph (or exact entry) and its record."""
    started = time.perf_counter()
    ids: dict[str, list[np.ndarray]] = {}
    vectors: dict[str, list[np.ndarray]] = {}
    reused_in: dict[str, int] = {}
    position = 0
    for group, batch_ids, matrix in _group_batches(folder, files):
        # rows [0, reused) of the table were copied from the parent, so within a group too its
        # reused rows come first
        reused_in[group] = reused_in.get(group, 0) + int(np.clip(reused - position, 0, len(batch_ids)))
        position += len(batch_ids)
        ids.setdefault(group, []).append(batch_ids)
        vectors.setdefault(group, []).append(matrix)
    groups: dict[str, Any] = {}
    (folder / INDEX_FOLDER).mkdir(exist_ok=True)
    for group, parts in ids.items():
        group_ids, group_vectors = np.concatenate(parts), np.concatenate(vectors[group])
        keys, rows, kept = row_keys(group_ids), len(group_ids), reused_in[group]
        if rows <= settings.exact_max_rows:
            groups[group] = {"engine": ExactIndex.engine, "rows": rows}
            continue
        distinct, first, counts = np.unique(keys, return_index=True, return_counts=True)
        if len(distinct) != rows:
            twice = group_ids[first[np.argmax(counts > 1)]]
            raise EmbeddingTableError(f"group {group!r} of {folder}: two rows share the key of id {twice!r} (the id "
                                      "appears twice, or two ids share a key); not published")
        graph = _parent_graph(parent, parent_record, group) if parent is not None and kept else None
        if graph is not None:
            stale = np.setdiff1d(graph.keys, keys[:kept])  # deleted rows, and changed ones re-added below
            if len(stale) + rows - kept > settings.update_max_fraction * rows:
                graph = None
        if graph is not None:
            graph.remove(stale)
            graph.add(keys[kept:], group_vectors[kept:])
            how = f"updated from {parent.name}: {len(stale)} removed, {rows - kept} added"
        else:
            graph = HnswIndex.new(group_vectors.shape[1])
            graph.add(keys, group_vectors)
            how = "built"
        if len(graph) != rows or len(np.unique(graph.keys)) != rows:
            raise EmbeddingTableError(f"the index of group {group!r} in {folder} holds {len(graph)} keys "
                                      f"({len(np.unique(graph.keys))} distinct) for {rows} rows; not published")
        path = folder / INDEX_FOLDER / f"{group}.usearch"
        graph.save(path)
        groups[group] = {"engine": HnswIndex.engine, "rows": rows, "file": f"{INDEX_FOLDER}/{path.name}",
                         "bytes": path.stat().st_size, "sha256": _sha256(path), "how": how}
    return {"groups": groups, "seconds": round(time.perf_counter() - started, 3)}


def open_group(snapshot: Path, group: str, entry: dict, view: bool = True) -> HnswIndex:
    """The graph of `group` in the published snapshot folder, checked against its record (size,
    sha256, one key per row).

    Raises:
        EmbeddingTableError: its file is missing, of another size or hash, or unreadable; the
            message names the file.
    """
    path = snapshot / entry["file"]
    if not path.is_file():
        raise EmbeddingTableError(f"the index file {path} of snapshot {snapshot.name} is missing")
    if path.stat().st_size != entry["bytes"] or _sha256(path) != entry["sha256"]:
        raise EmbeddingTableError(f"the index file {path} of snapshot {snapshot.name} is corrupt: its size or sha256 "
                                  "differs from the manifest's")
    try:
        graph = HnswIndex.load(path, view=view)
    except (ValueError, RuntimeError) as error:
        raise EmbeddingTableError(f"the index file {path} of snapshot {snapshot.name} is unreadable: {error}") from None
    if len(graph) != entry["rows"]:
        raise EmbeddingTableError(f"the index file {path} of snapshot {snapshot.name} holds {len(graph)} keys, the "
                                  f"manifest {entry['rows']}")
    return graph


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="build a snapshot's nearest-neighbour index in its staging folder")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--files", nargs="+", required=True)
    parser.add_argument("--exact-max-rows", type=int, default=EXACT_MAX_ROWS)
    parser.add_argument("--update-max-fraction", type=float, default=UPDATE_MAX_FRACTION)
    parser.add_argument("--parent", type=Path)
    parser.add_argument("--parent-record", type=json.loads)
    parser.add_argument("--reused", type=int, default=0)
    args = parser.parse_args(argv)
    settings = IndexSettings(args.exact_max_rows, args.update_max_fraction)
    try:
        record = build(args.folder, args.files, settings, args.parent, args.parent_record, args.reused)
    except Exception as error:  # noqa: BLE001 - reported to the writer as one line
        print(f"{type(error).__name__}: {error}".replace("\n", " "), file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps(record))


if __name__ == "__main__":
    main()
