"""Ingest on Ray Data against the local engine and a hand-written Ray Data pipeline, and the
driver's memory as the source grows tenfold, side by side in one run.

    python benchmarks/ingest_throughput.py [--repeats N] [--copies 10] [--cpus 2]

Data: the MNIST shards in ../shared/data/mnist (or $CLPIPE_SHARED_DATA/mnist), 70,000 rows.

Rows measured, each in a fresh process (so that one's memory or Ray cannot help another):
  local engine   DatasetStore.ingest: one process reads, decodes every image, sorts, writes.
  ray engine     flows.ray_edge.ingest.ingest_with_ray on a local Ray of --cpus CPUs: read tasks,
                 decode in map_batches, group by bucket, each bucket sorted, hashed and written.
  plain Ray Data ray.data.read_webdataset(shards, decoder=None).write_parquet(folder): what a
                 user would write by hand; it validates nothing, dedups nothing, versions nothing.
Both Ray rows are timed from after ray.init (a cluster is usually running already).
At scale: the ray engine and the plain pipeline again on the shards repeated --copies times under
new keys (700k rows), where fixed start-up costs weigh a tenth as much.
Memory: the driver's peak RSS (getrusage in the driver process; Ray's own processes are not the
driver) for the ray engine on the 70k rows and on the shards repeated --copies times under new
keys (700k rows).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _common import REPO, shared_data


def _child(mode: str, source: str, out: str, cpus: int) -> None:
    """Run one measurement in this process and print a JSON line."""
    from cl_core.datasets import DatasetStore

    started = time.perf_counter()
    import pyarrow.parquet as pq

    if mode == "local":
        rows = DatasetStore(out).ingest(source, "bench").rows
    else:
        import ray

        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        started = time.perf_counter()
        if mode == "ray":
            from flows.ray_edge.ingest import ingest_with_ray

            rows = ingest_with_ray(DatasetStore(out), source, "bench").rows
        else:
            shards = sorted(str(p) for p in Path(source).iterdir() if p.name.endswith((".tar", ".tar.gz")))
            ray.data.read_webdataset(shards, decoder=None).write_parquet(out)
            rows = sum(pq.ParquetFile(p).metadata.num_rows for p in Path(out).glob("*.parquet"))
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"mode": mode, "rows": rows, "seconds": seconds, "peak_rss_mb": peak_mb}))


def _measure(mode: str, source: Path, scratch: Path, cpus: int) -> dict:
    out = tempfile.mkdtemp(dir=scratch, prefix=f"{mode}-")
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(source), out, "--cpus", str(cpus)],
                          capture_output=True, text=True, cwd=REPO, env=_env())
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{mode} on {source} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(REPO)
    return env


def _repeated(source: Path, folder: Path, copies: int) -> Path:
    """The shards `copies` times, copy k's keys prefixed "c<k>-" (new rows, same images);
    uncompressed, to keep the copy quick."""
    folder.mkdir()
    for shard in sorted(source.glob("*.tar*")):
        members = []
        with tarfile.open(shard, "r:*") as tar:
            for member in tar:
                if member.isfile():
                    members.append((member.name, tar.extractfile(member).read()))
        stem = shard.name.split(".tar")[0]
        for copy in range(copies):
            with tarfile.open(folder / f"{stem}-c{copy:02d}.tar", "w") as out:
                for name, data in members:
                    info = tarfile.TarInfo(f"c{copy:02d}-{name.removeprefix('./')}")
                    info.size = len(data)
                    out.addfile(info, io.BytesIO(data))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1, help="best of N runs per throughput row")
    parser.add_argument("--copies", type=int, default=10, help="the memory row's source: MNIST this many times")
    parser.add_argument("--cpus", type=int, default=2, help="Ray's CPUs (the ray engine's workers)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "SOURCE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child, cpus=args.cpus)
        return

    source = shared_data("mnist")
    if source is None:
        raise SystemExit("MNIST shards not found: set CLPIPE_SHARED_DATA to the folder holding mnist/")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        runs: dict[str, list[dict]] = {"local engine": [], "ray engine": [], "plain Ray Data": []}
        for _ in range(args.repeats):  # interleaved, so load from elsewhere hits every row alike
            for name, mode in (("local engine", "local"), ("ray engine", "ray"), ("plain Ray Data", "plain")):
                runs[name].append(_measure(mode, source, scratch, args.cpus))
        small = min(runs["ray engine"], key=lambda r: r["seconds"])
        repeated = _repeated(source, scratch / "repeated", args.copies)
        big = _measure("ray", repeated, scratch, args.cpus)
        big_plain = _measure("plain", repeated, scratch, args.cpus)

    best = {name: min(values, key=lambda r: r["seconds"]) for name, values in runs.items()}
    rows = best["local engine"]["rows"]
    print(f"data: MNIST shards at {source}; {rows:,} rows; best of {args.repeats}; Ray with {args.cpus} CPUs")
    print(f"{'':16} {'seconds':>9} {'rows/s':>10} {'driver peak RSS MB':>19}")
    for name, run in best.items():
        print(f"{name:16} {run['seconds']:9.2f} {run['rows'] / run['seconds']:10,.0f} {run['peak_rss_mb']:19.0f}")
    rate = {name: run["rows"] / run["seconds"] for name, run in best.items()}
    print(f"ratio ray engine / local engine:   {rate['ray engine'] / rate['local engine']:.3f}")
    print(f"ratio ray engine / plain Ray Data: {rate['ray engine'] / rate['plain Ray Data']:.3f}  (aim >= 0.8)")
    print(f"ray engine, {big['rows']:,} rows: {big['seconds']:.1f} s, driver peak RSS {big['peak_rss_mb']:.0f} MB "
          f"vs {small['peak_rss_mb']:.0f} MB for {small['rows']:,} rows")
    print(f"ratio driver peak RSS {big['rows']:,} / {small['rows']:,} rows: "
          f"{big['peak_rss_mb'] / small['peak_rss_mb']:.3f}  (aim <= 1.1)")
    # The same ratio once the fixed start-up (workers, the shuffle's actors) is spread over 10x the rows.
    print(f"plain Ray Data, {big_plain['rows']:,} rows: {big_plain['seconds']:.1f} s; ratio ray engine / plain Ray Data "
          f"at {big['rows']:,} rows: {big_plain['seconds'] / big['seconds']:.3f}")


if __name__ == "__main__":
    main()
