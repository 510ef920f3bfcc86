"""Ingest throughput of `DatasetStore.ingest`, against pyarrow writing the same rows, in one run.

    python benchmarks/ingest_throughput.py [--repeats N] [--limit N]

Data: the MNIST shards in ../shared/data/mnist (or $CLPIPE_SHARED_DATA/mnist); when absent,
scikit-learn's digits repeated into tar shards in a temporary folder.

Rows measured, all over the same rows:
  ingest           DatasetStore.ingest end to end: read the shards, decode every image to
                   validate it, hash, sort, write Parquet, publish.
  read+decode+write the same work done by hand without the store (open_source, PIL decode,
                   from_pylist, write_table): the floor for an ingest that validates.
  pyarrow write    pa.Table.from_pylist + pq.write_table of rows already in memory.
The ratio asked of the store is ingest rows/s / pyarrow-write rows/s.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cl_core.datasets import (  # noqa: E402
    IMAGE_SCHEMA,
    DatasetStore,
    ImageRecord,
    decode_image,
    split_for_id,
)
from cl_core.datasets.sources import open_source  # noqa: E402
from cl_core.datasets.sources.digits import read_digits  # noqa: E402


def _mnist_folder() -> Path | None:
    repo = Path(__file__).resolve().parents[1]
    base = Path(os.environ.get("CLPIPE_SHARED_DATA", repo.parent / "shared" / "data"))
    folder = base / "mnist"
    return folder if folder.is_dir() else None


def _digits_shards(folder: Path, copies: int) -> Path:
    """Digits repeated `copies` times as gzipped shards, one shard per copy, distinct ids."""
    digits = list(read_digits())
    for copy in range(copies):
        with tarfile.open(folder / f"digits-train-{copy:04d}.tar.gz", "w:gz") as tar:
            for record in digits:
                for suffix, data in (("png", record.image), ("cls", str(record.label).encode())):
                    info = tarfile.TarInfo(f"c{copy:03d}-{record.id}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return folder


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=1, help="best of N runs per row")
    parser.add_argument("--limit", type=int, default=None, help="ingest only the first N rows")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        source = _mnist_folder()
        if source is None:
            source = _digits_shards(scratch, copies=20)
            label = "sklearn digits x20 (shared MNIST not found)"
        else:
            label = f"MNIST shards at {source}"

        # The rows as the store would hold them, read once, untimed.
        rows = [
            {"id": r.id, "image": r.image, "label": r.label, "split": r.split or split_for_id(r.id)}
            for r in open_source(str(source), limit=args.limit).records
            if isinstance(r, ImageRecord)
        ]

        def ingest(run: int) -> None:
            store = DatasetStore(scratch / f"store-{run}")
            result = store.ingest(str(source), "bench", limit=args.limit)
            assert result.rows == len(rows), (result.rows, len(rows))

        def by_hand(run: int) -> None:
            kept = []
            for record in open_source(str(source), limit=args.limit).records:
                if not isinstance(record, ImageRecord):
                    continue
                decode_image(record.image)
                split = record.split or split_for_id(record.id)
                kept.append(
                    {"id": record.id, "image": record.image, "label": record.label, "split": split}
                )
            table = pa.Table.from_pylist(kept, schema=IMAGE_SCHEMA)
            pq.write_table(table, scratch / f"hand-{run}.parquet")

        def write_only(run: int) -> None:
            table = pa.Table.from_pylist(rows, schema=IMAGE_SCHEMA)
            pq.write_table(table, scratch / f"write-{run}.parquet")

        # Interleaved, so that load from other processes on the machine hits every row alike.
        times = {"ingest": [], "read+decode+write": [], "pyarrow write": []}
        for run in range(args.repeats):
            times["ingest"].append(_timed(lambda run=run: ingest(run)))
            times["read+decode+write"].append(_timed(lambda run=run: by_hand(run)))
            times["pyarrow write"].append(_timed(lambda run=run: write_only(run)))

    best = {name: min(values) for name, values in times.items()}
    rate = {name: len(rows) / seconds for name, seconds in best.items()}
    print(f"data: {label}; {len(rows):,} rows; best of {args.repeats}; {os.cpu_count()} CPUs")
    print(f"{'':20} {'seconds':>9} {'rows/s':>10}")
    for name in times:
        print(f"{name:20} {best[name]:9.2f} {rate[name]:10,.0f}")
    to_write = rate["ingest"] / rate["pyarrow write"]
    to_floor = rate["ingest"] / rate["read+decode+write"]
    print(f"ratio ingest / pyarrow write:     {to_write:.3f}  (aim >= 0.5)")
    print(f"ratio ingest / read+decode+write: {to_floor:.3f}")


if __name__ == "__main__":
    main()
