"""Driver peak RSS of an incremental `clpipe reembed` (1% new rows) on a large table ÷ the same
on a table a tenth of its size, side by side in one run: does the incremental path's memory grow
with the table?

    .venv/bin/python benchmarks/incremental_memory.py [--rows 100000,1000000] [--model digits|text]

For each size, in one workspace and one registered model (`refresh_incremental.train_model`):
publish version 1 of the dataset `bench<rows>` (`refresh_incremental.ingest_bench`), export it
in full (the parent snapshot), publish version 2 with `--new-fraction` more rows, then run
`clpipe reembed` in a fresh process whose own peak RSS (VmHWM: the driver, not Prefect's
temporary server or Ray's workers) it records at exit (`benchmarks/_peak_rss.py`). Also shown:
the same process's RSS for `clpipe reembed` with nothing to do (the fixed cost: interpreter,
torch, MLflow, Prefect, the model) and the parent's vector bytes, which the driver used to read
whole.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from refresh_incremental import ingest_bench, train_model

from _common import REPO, clpipe, table


def reembed_peak(workspace: Path, model: str, dataset: str) -> tuple[dict, float, float]:
    """`clpipe reembed --json` in a fresh process: (its JSON, wall seconds, peak RSS in MB)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS")}
    with tempfile.NamedTemporaryFile(prefix="peak-rss-") as peak:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "_peak_rss.py"), "reembed", "--json", "--model", model,
             "--dataset", dataset, "--workspace", str(workspace)],
            capture_output=True, text=True, cwd=REPO,
            env={**env, "PYTHONPATH": str(REPO), "CLPIPE_PEAK_RSS_FILE": peak.name})
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-4000:])
            raise SystemExit(f"clpipe reembed --dataset {dataset} failed with exit status {done.returncode}")
        return json.loads(done.stdout.strip().splitlines()[-1]), wall, int(Path(peak.name).read_text()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000", help="table sizes, comma-separated, smallest first")
    parser.add_argument("--new-fraction", type=float, default=0.01, help="rows added in the second version")
    parser.add_argument("--model", choices=("digits", "text"), default="digits")
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]
    print(f"{args.model}: sizes {sizes}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="incremental-memory-") as folder:
        workspace = Path(folder) / "workspace"
        model = train_model(workspace, Path(folder), args.model)
        from cl_core.embeddings import EmbeddingTable

        for rows in sizes:
            name, new_rows = f"bench{rows}", round(rows * args.new_fraction)
            ingest_bench(workspace, rows, args.model, name)
            parent, wall = clpipe(workspace, "export", "--json", "--model", model, "--dataset", name)
            print(f"{name}: export of version 1 in {wall:.1f} s", flush=True)
            snapshot = EmbeddingTable(workspace / "embeddings", parent["model_name"], name).current()
            vector_mb = rows * snapshot.manifest.dimension * 4 / 2**20
            ingest_bench(workspace, rows + new_rows, args.model, name)
            written, wall, peak = reembed_peak(workspace, model, name)
            got = (written["action"], written["rows_embedded"], written["rows_reused"])
            if got != ("incremental", new_rows, rows):
                raise SystemExit(f"{name}: reembed gave {got}, expected ('incremental', {new_rows}, {rows})")
            idle, _, idle_peak = reembed_peak(workspace, model, name)
            if idle["action"] != "up_to_date":
                raise SystemExit(f"{name}: a second reembed did {idle['action']}, expected up_to_date")
            print(f"{name}: incremental reembed peak RSS {peak:.0f} MB ({wall:.1f} s wall, "
                  f"{written['seconds']:.2f} s table write); up to date {idle_peak:.0f} MB", flush=True)
            results.append((rows, peak, idle_peak, vector_mb, written))

    base_rows, base_peak = results[0][0], results[0][1]
    lines = [(f"{rows:,}", f"{w['rows_embedded']:,} / {w['rows_reused']:,}", f"{vector_mb:,.1f}", f"{idle:,.0f}",
              f"{peak:,.0f}", f"{peak - idle:,.0f}", f"**{peak / base_peak:.3f}**" if rows != base_rows else "1")
             for rows, peak, idle, vector_mb, w in results]
    print()
    print(table(lines, ("table rows", "embedded / reused", "parent vectors MB", "up-to-date RSS MB",
                        "incremental peak RSS MB", "above up-to-date MB", f"÷ {base_rows:,} rows (aim <= 1.2)")))
    print(f"\ncommand: {shlex.join(['.venv/bin/python', os.path.relpath(__file__, REPO), *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
