"""`clpipe reembed` with nothing to do on a 1M-row table, beyond the command's fixed start-up,
measured side by side with the same command on a 1-row table.

    .venv/bin/python benchmarks/reembed_up_to_date.py [--rows 1000000] [--repeats 5]

Setup (not timed), in a temporary workspace with a sqlite MLflow store:
  - two image datasets, `big` and `small`, of 100 digits each (`DatasetStore.ingest_records`);
  - a registered model version `bench-model/1` (a run and a registry entry: the up-to-date path
    resolves the version but never loads the model, so no weights are logged);
  - for each dataset, a table snapshot written with `SnapshotWriter` and published as CURRENT,
    naming that model version and the dataset's latest version: `big` gets `--rows` rows of a
    4-dimensional embedding, `small` one row. The dataset's own size plays no part in the
    check (it compares versions, reading CURRENT, its manifest and the dataset's metadata).
Measured, alternating, `--repeats` times each, every run a fresh process:
  1M-row table  `clpipe reembed --model bench-model/1 --dataset big --json`
  1-row table   `clpipe reembed --model bench-model/1 --dataset small --json`
  --help        `python -m flows.cli --help` (the CLI's import time alone)
Reported: the median and the minimum wall times (the minimum is the least disturbed by other
load on a shared machine), their differences (what the table's size costs beyond the
command's fixed start-up; aim <= 2 s) and the flow's own `seconds` (lock to decision).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import statistics
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

from _common import REPO, clpipe, table

MODEL, DIM = "bench-model", 4
CHUNK = 100_000


def register_model(workspace: Path) -> str:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{workspace / 'mlflow.db'}")
    with mlflow.start_run(run_name="bench-model") as run:
        pass
    client = MlflowClient()
    client.create_registered_model(MODEL)
    return str(client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run.info.run_id).version)


def write_table(workspace: Path, dataset_name: str, rows: int, model_version: str) -> None:
    """A published snapshot of `rows` rows that names the dataset's latest version."""
    from datetime import datetime

    import numpy as np
    import pyarrow as pa

    from cl_core.datasets import DatasetStore, ImageRecord
    from cl_core.datasets.sources.digits import read_digits
    from cl_core.embeddings import IMAGE_KEYS, EmbeddingTable, SnapshotWriter, embedding_schema, with_vectors

    digits = itertools.islice(read_digits(), 100)
    version = DatasetStore(workspace / "datasets").ingest_records(
        (ImageRecord(id=f"{dataset_name}-{i}", image=r.image, label=r.label, split=None) for i, r in enumerate(digits)),
        dataset_name, description="generated:sklearn-digits-100", class_names=[str(d) for d in range(10)]).version
    target = EmbeddingTable(workspace / "embeddings", MODEL, dataset_name)
    lineage = {"model_name": MODEL, "model_version": model_version, "dataset_version": version}
    created = datetime.now(UTC)
    rng = np.random.default_rng(0)
    schema = embedding_schema(DIM)
    with target.lock(), SnapshotWriter(target, schema) as writer:
        for start in range(0, rows, CHUNK):
            ids = range(start, min(start + CHUNK, rows))
            keys = pa.record_batch([
                pa.array([f"row-{i:07d}" for i in ids]), pa.array(["train"] * len(ids)),
                pa.array([i % 10 for i in ids], pa.int64()), pa.array([f"{i:064x}" for i in ids]),
            ], schema=IMAGE_KEYS)
            writer.write(with_vectors(keys, rng.standard_normal((len(ids), DIM), dtype=np.float32), lineage, created,
                                      schema))
        writer.check(rows, DIM)
        writer.publish({"model_name": MODEL, "model_version": model_version, "dataset_name": dataset_name,
                        "dataset_version": version, "prefect_flow_run_id": None, "mlflow_run_id": None,
                        "action": "export", "parent": None, "rows_embedded": rows, "rows_reused": 0,
                        "rows_deleted": 0}, keep_snapshots=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the big table")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command (medians are reported)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    print(f"{args.rows:,}-row table vs a 1-row table, dim {DIM}; {args.repeats} runs each; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    walls: dict[str, list[float]] = {"big": [], "small": [], "help": []}
    flows: dict[str, list[float]] = {"big": [], "small": []}
    with tempfile.TemporaryDirectory(prefix="uptodate-bench-") as folder:
        workspace = Path(folder) / "workspace"
        version = register_model(workspace)
        started = time.perf_counter()
        write_table(workspace, "big", args.rows, version)
        write_table(workspace, "small", 1, version)
        print(f"tables written in {time.perf_counter() - started:.1f} s", flush=True)
        for _ in range(args.repeats):
            for name in ("big", "small"):
                result, wall = clpipe(workspace, "reembed", "--model", f"{MODEL}/{version}", "--dataset", name, "--json")
                if result["action"] != "up_to_date" or result["rows"] != (args.rows if name == "big" else 1):
                    raise SystemExit(f"expected up_to_date on {name}, got {result}")
                walls[name].append(wall)
                flows[name].append(result["seconds"])
            walls["help"].append(clpipe(workspace, "--help")[1])
            print(f"  big {walls['big'][-1]:.1f} s, small {walls['small'][-1]:.1f} s, --help {walls['help'][-1]:.1f} s",
                  flush=True)

    median = {name: statistics.median(values) for name, values in walls.items()}
    least = {name: min(values) for name, values in walls.items()}
    flow = {name: statistics.median(values) for name, values in flows.items()}
    rows = [
        (f"reembed, {args.rows:,}-row table", f"{median['big']:.2f}", f"{least['big']:.2f}", f"{flow['big']:.3f}"),
        ("reembed, 1-row table", f"{median['small']:.2f}", f"{least['small']:.2f}", f"{flow['small']:.3f}"),
        ("`clpipe --help` (imports only)", f"{median['help']:.2f}", f"{least['help']:.2f}", ""),
        ("difference: big - small table", f"**{median['big'] - median['small']:.2f}**",
         f"**{least['big'] - least['small']:.2f}**", f"{flow['big'] - flow['small']:.3f}"),
    ]
    print()
    print(table(rows, ("command", "median wall s", "min wall s", "flow seconds")))
    print(f"\naim: difference <= 2 s; command: "
          f"{shlex.join(['.venv/bin/python', os.path.relpath(__file__, REPO), *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
