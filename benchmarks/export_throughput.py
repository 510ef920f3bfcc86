"""Embedding export throughput ÷ a bare `model(x)` loop, and export peak memory vs row count.

    .venv/bin/python benchmarks/export_throughput.py [--rows 100000 1000000] [--batch-size 1024]
                                                     [--threads 1]

Data: scikit-learn's 1,797 digits as 8x8 grayscale PNG bytes, repeated with unique ids
(`digits-0000000`, ...) and ingested with `DatasetStore.ingest_records`, one dataset per
`--rows` value, in a temporary folder.

Model: `build_embedder(1, 8, depths (1, 1), widths (16, 32))` with random (seeded) weights,
wrapped in the MLflow pyfunc `ImageEmbeddingModel` through `configure`, the same code
`load_context` runs; no tracking server or registry is involved.

Paths measured over the same rows, each in a fresh child process (this script with a hidden
`--child` flag) so every one reports its own peak RSS (`ru_maxrss`):
  bare model(x)  iter_batches(columns=["image"]) -> decode_images -> embedder(x) under
                 torch.inference_mode; the embeddings are discarded, nothing is written.
  export         what the export flow's write-snapshot task runs: write_full_snapshot over
                 the rows (id, split, label, image, content_sha256) with
                 `pyfunc.predict(None, DataFrame({"image": ...}))`, to a table snapshot.
The launcher itself stays small (the ingest runs in a child as well), because on Linux a child's
ru_maxrss starts from its parent's peak; VmHWM from /proc/self/status is printed as a check.
Per row count the order is bare, export, bare; the ratio is export rows/s ÷ the mean of the two
bare runs (aim >= 0.8). Flat export memory means peak RSS at the largest row count ÷ peak RSS
at the smallest is about 1.0. Child start-up (imports, model build) is not timed.
Not measured: MLflow's PyFuncModel wrapper (input schema enforcement) that the flow's
registry-loaded model adds around `predict`.

With `--engines` (issue 14, part 4) the run compares the two export engines instead, on the
same rows (default 100,000) and the same cores, in the order local, ray, local:
  local  write_full_snapshot in one process, torch on `--engine-threads` threads (default:
         every core);
  ray    the `ray` engine (flows.ray_edge.embed.RayEngine): Ray Data reads the parts, `--actors`
         actors (1 CPU and so 1 torch thread each; default 2) embed, write tasks write the
         parts, the driver adopts and publishes them. A local Ray is started before the clock
         starts (its start-up is printed apart); the actors' start-up and model load are timed.
The ratio is ray rows/s ÷ the mean of the two local runs (aim >= 0.9). Peak RSS of the ray run
is the driver's only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, table

ARCH = {"channels": 1, "image_size": 8, "depths": [1, 1], "widths": [16, 32]}


# ---- child: one measured run in a fresh process ---------------------------------------------


def child(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd
    import torch
    from safetensors.torch import load_file

    from cl_core.datasets import DatasetStore, decode_images
    from cl_core.embeddings import EmbeddingTable, write_full_snapshot
    from flows.mlflow_edge.image_pyfunc import ImageEmbeddingModel

    if args.child == "prepare":
        names = build_datasets(Path(args.store), [int(n) for n in args.name.split(",")])
        save_weights(Path(args.weights))
        print(json.dumps(names))
        return
    torch.set_num_threads(args.threads)
    model = ImageEmbeddingModel().configure(ARCH, load_file(args.weights))
    dataset = DatasetStore(args.store).resolve(args.name)
    extra = {}
    if args.child == "ray":
        from flows.ray_edge.cluster import ensure_ray

        ray_started = time.perf_counter()
        ensure_ray(None, logical_cpus=args.actors + 2)
        extra["ray_init_s"] = time.perf_counter() - ray_started
    started = time.perf_counter()
    if args.child == "bare":
        rows = 0
        for batch in dataset.iter_batches(batch_size=args.batch_size, columns=["image"]):
            x = decode_images(batch.column("image"), model.image_size, model.channels)
            with torch.inference_mode():
                model.embedder(x)
            rows += batch.num_rows
    else:

        def embed(images: list[bytes]) -> np.ndarray:
            return model.predict(None, pd.DataFrame({"image": images}))

        if args.child == "ray":
            from functools import partial

            from flows.ray_edge.embed import RayEngine

            embed = RayEngine(partial(load_bench_model, args.weights), actors=args.actors)
        table = EmbeddingTable(Path(args.target), "bench", dataset.name)
        record = {"model_name": "bench", "model_version": "1", "dataset_name": dataset.name,
                  "dataset_version": dataset.version, "prefect_flow_run_id": None, "mlflow_run_id": None, "action": "export"}
        with table.lock():
            rows = write_full_snapshot(table, dataset, embed, model.embedder.embedding_dim, record,
                                       batch_size=args.batch_size, keep_snapshots=1).manifest.rows
    seconds = time.perf_counter() - started
    if rows != dataset.num_rows():
        raise SystemExit(f"{args.child}: {rows} rows, the dataset has {dataset.num_rows()}")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": peak_kb / 1024, "vm_hwm_mb": vm_hwm_mb(),
                      **extra}))


def load_bench_model(weights: str):
    """What each actor of the ray engine loads: the same pyfunc over the same weights (Ray gives
    a 1-CPU actor one torch thread)."""
    import numpy as np
    import pandas as pd
    from safetensors.torch import load_file

    from flows.mlflow_edge.image_pyfunc import ImageEmbeddingModel

    model = ImageEmbeddingModel().configure(ARCH, load_file(weights))

    def embed(images: list[bytes]) -> np.ndarray:
        return model.predict(None, pd.DataFrame({"image": images}))

    return embed, model.embedder.embedding_dim, "image"


def vm_hwm_mb() -> float | None:
    """This process image's own peak RSS (Linux), the cross-check for ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# ---- parent ---------------------------------------------------------------------------------


def build_datasets(store_root: Path, sizes: list[int]) -> dict[str, str]:
    from cl_core.datasets import DatasetStore, ImageRecord
    from cl_core.datasets.sources.digits import read_digits

    digits = [(r.image, r.label) for r in read_digits()]
    store = DatasetStore(store_root)
    names = {}
    for rows in sizes:

        def records(rows=rows):
            for i in range(rows):
                image, label = digits[i % len(digits)]
                yield ImageRecord(id=f"digits-{i:07d}", image=image, label=label, split=None)

        name = f"digits-{rows}"
        result = store.ingest_records(
            records(), name, description=f"generated:sklearn-digits-x{rows}",
            class_names=[str(d) for d in range(10)],
        )
        print(f"ingest_records {rows:,} rows: {result.elapsed_s:.1f} s "
              f"({rows / result.elapsed_s:,.0f} rows/s), version {result.version}", flush=True)
        names[str(rows)] = name
    return names


def save_weights(path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from cl_core.models import build_embedder

    torch.manual_seed(0)
    embedder = build_embedder(ARCH["channels"], ARCH["image_size"], ARCH["depths"], ARCH["widths"])
    save_file({k: v.contiguous() for k, v in embedder.state_dict().items()}, str(path))


def run_child(mode: str, args, store: Path, name: str, weights: Path, target: Path, threads: int | None = None) -> dict:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", mode, "--store", str(store),
        "--name", name, "--weights", str(weights), "--target", str(target),
        "--batch-size", str(args.batch_size), "--threads", str(threads or args.threads), "--actors", str(args.actors),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"child {mode} on {name} failed with exit status {done.returncode}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["rows_per_s"] = result["rows"] / result["seconds"]
    hwm = "" if result["vm_hwm_mb"] is None else f" (VmHWM {result['vm_hwm_mb']:.1f} MB)"
    if "ray_init_s" in result:
        hwm += f" (ray.init {result['ray_init_s']:.1f} s, not timed)"
    print(f"  {mode:6} {result['rows']:>9,} rows  {result['seconds']:7.1f} s  "
          f"{result['rows_per_s']:9,.0f} rows/s  peak RSS {result['peak_rss_mb']:7.1f} MB{hwm}", flush=True)
    return result


def prepare(store: Path, weights: Path, sizes: list[int]) -> dict[str, str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "prepare", "--store", str(store),
               "--name", ",".join(map(str, sizes)), "--weights", str(weights)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"preparing the datasets failed with exit status {done.returncode}")
    *lines, last = done.stdout.strip().splitlines()
    print("\n".join(lines), flush=True)
    return json.loads(last)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="dataset sizes; memory is compared between the smallest and largest")
    parser.add_argument("--batch-size", type=int, default=1024, help="iter_batches rows (the export flow's default)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every measured run")
    parser.add_argument("--engines", action="store_true", help="compare the ray engine with the local one instead "
                        "(default rows 100000)")
    parser.add_argument("--actors", type=int, default=2, help="--engines: actors of the ray engine (1 CPU each)")
    parser.add_argument("--engine-threads", type=int, default=os.cpu_count(),
                        help="--engines: torch threads of the local engine (default: every core)")
    for hidden in ("--child", "--store", "--name", "--weights", "--target"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.engines:
        compare_engines(args, parser)
        return
    sizes = sorted(set(args.rows))
    if sizes[0] < 1:
        parser.error("--rows must be positive")

    command_line, wall = _command_line(), time.perf_counter()
    print(f"data: sklearn digits 8x8 PNG repeated to {', '.join(f'{n:,}' for n in sizes)} rows; "
          f"model: embedder {ARCH}; batch {args.batch_size}; {args.threads} torch thread(s); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    with _scratch("export-bench-") as (folder, store, weights):
        # Ingest and weights in a child too: on Linux a child's ru_maxrss starts from its
        # parent's peak (the high-water mark survives fork and exec), so this launcher must stay
        # smaller than anything it measures.
        names = prepare(store, weights, sizes)
        for rows in sizes:
            print(f"{rows:,} rows:", flush=True)
            name = names[str(rows)]
            target = folder / "embeddings" / name
            runs = [run_child(mode, args, store, name, weights, target) for mode in ("bare", "export", "bare")]
            results.append((rows, runs))

    lines = []
    for rows, (before, export, after) in results:
        bare = statistics.mean([before["rows_per_s"], after["rows_per_s"]])
        lines += [
            ("bare model(x) (before)", f"{rows:,}", f"{before['rows_per_s']:,.0f}", "", f"{before['peak_rss_mb']:.0f}"),
            ("export (write_full_snapshot + pyfunc)", f"{rows:,}", f"{export['rows_per_s']:,.0f}",
             f"{export['rows_per_s'] / bare:.3f}", f"{export['peak_rss_mb']:.0f}"),
            ("bare model(x) (after)", f"{rows:,}", f"{after['rows_per_s']:,.0f}", "", f"{after['peak_rss_mb']:.0f}"),
        ]
    print()
    print(table(lines, ("path", "rows", "rows/s", "ratio vs bare mean", "peak RSS MB")))
    (small, small_runs), (large, large_runs) = results[0], results[-1]
    if large != small:
        export_ratio = large_runs[1]["peak_rss_mb"] / small_runs[1]["peak_rss_mb"]
        bare_ratio = max(r["peak_rss_mb"] for r in (large_runs[0], large_runs[2])) / max(
            r["peak_rss_mb"] for r in (small_runs[0], small_runs[2]))
        print(f"export peak RSS {large:,} / {small:,} rows: {large_runs[1]['peak_rss_mb']:.0f} / "
              f"{small_runs[1]['peak_rss_mb']:.0f} MB = {export_ratio:.3f} (flat ~ 1.0); "
              f"bare loop: {bare_ratio:.3f}")
    launcher = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"launcher peak RSS {launcher:.0f} MB (below every child's, so their ru_maxrss is their own); "
          f"total wall {time.perf_counter() - wall:.0f} s; load average at the end {os.getloadavg()[0]:.2f}")
    print(f"command: {command_line}")


def _command_line() -> str:
    """How this run was started, the interpreter relative to the repository when inside it."""
    python = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable
    return shlex.join([python, *sys.argv])


@contextlib.contextmanager
def _scratch(prefix: str):
    """A temporary folder, its dataset store and where the embedder's weights go."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        folder = Path(name)
        yield folder, folder / "datasets", folder / "embedder.safetensors"


def compare_engines(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Issue 14 part 4: the ray engine with `--actors` CPU actors ÷ the local engine on the same
    cores, side by side in one run (local, ray, local)."""
    rows = args.rows[0] if args.rows != parser.get_default("rows") else 100_000
    command_line, wall = _command_line(), time.perf_counter()
    print(f"data: sklearn digits 8x8 PNG repeated to {rows:,} rows; model: embedder {ARCH}; batch {args.batch_size}; "
          f"local engine {args.engine_threads} torch thread(s), ray engine {args.actors} actor(s) x 1 CPU; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    with _scratch("export-engines-") as (folder, store, weights):
        name = prepare(store, weights, [rows])[str(rows)]
        target = folder / "embeddings" / name
        runs = [run_child(mode, args, store, name, weights, target, threads=args.engine_threads)
                for mode in ("export", "ray", "export")]
    before, distributed, after = runs
    local = statistics.mean([before["rows_per_s"], after["rows_per_s"]])
    print()
    print(table([
        ("local engine (before)", f"{rows:,}", f"{before['rows_per_s']:,.0f}", "", f"{before['peak_rss_mb']:.0f}"),
        (f"ray engine, {args.actors} CPU actors", f"{rows:,}", f"{distributed['rows_per_s']:,.0f}",
         f"{distributed['rows_per_s'] / local:.3f}", f"{distributed['peak_rss_mb']:.0f} (driver)"),
        ("local engine (after)", f"{rows:,}", f"{after['rows_per_s']:,.0f}", "", f"{after['peak_rss_mb']:.0f}"),
    ], ("path", "rows", "rows/s", "ratio vs local mean", "peak RSS MB")))
    print(f"ray.init {distributed['ray_init_s']:.1f} s (before the clock); total wall {time.perf_counter() - wall:.0f} s; "
          f"load average at the end {os.getloadavg()[0]:.2f}")
    print(f"command: {command_line}")


if __name__ == "__main__":
    main()
