"""The `clpipe` parser: one subparser per command, each naming the handler that runs it with
`set_defaults(func=...)`; `main` (flows/cli/__init__.py) calls `args.func(args, workspace)`."""

from __future__ import annotations

import argparse
from pathlib import Path

from cl_core.config import ExportConfig
from cl_core.modalities import MODALITIES
from flows.cli import (
    embedding_commands,
    pipeline_commands,
    reading_commands,
    schedule_commands,
    service_commands,
    sweep_commands,
)
from flows.cli.overrides import one_column
from flows.mlflow_edge.headline_metrics import PRIMARY


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", help="folder for datasets, MLflow store, checkpoints, embeddings "
                        "(default: $CLPIPE_WORKSPACE or ./workspace)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary as the last line of output")
    parser.add_argument("--verbose", action="store_true", help="show Prefect's and Ray's logs on the console instead of "
                        "progress bars (by default they go to WORKSPACE/logs/<flow run id>.log)")


def _training_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML config (sections: data, model, views, loss, train, eval, registry)")
    parser.add_argument("--workers", type=int, help="Ray Train workers (train.workers)")
    parser.add_argument("--epochs", type=int, help="training epochs (train.epochs)")
    parser.add_argument("--batch-size", type=int, help="global batch size, split over workers (train.batch_size)")
    parser.add_argument("--lr", type=float, help="peak learning rate (train.lr)")
    parser.add_argument("--temperature", type=float, help="the objective's temperature (loss.temperature)")
    parser.add_argument("--image-size", type=int, help="side the images are resized to (data.image_size)")
    parser.add_argument("--gpu", action="store_const", const=True, help="one worker per GPU (train.gpu)")
    parser.add_argument("--model-name", help="registered model name (registry.model_name)")
    parser.add_argument("--ray-address", help="join this Ray cluster (default: $RAY_ADDRESS, else start a local Ray)")


_EXPORT = ExportConfig()  # the defaults the help text names


def _engine_flags(parser: argparse.ArgumentParser) -> None:
    # No argparse choices for --engine: an unknown engine is a config error naming export.engine.
    parser.add_argument("--engine", help="local (embed in this process, the default) or ray (Ray Data reads the "
                        "dataset's parts and an actor pool embeds them) (export.engine)")
    parser.add_argument("--actors", type=int, help="engine ray: actors in the pool, each loads the model once "
                        f"(export.actors, default {_EXPORT.actors})")
    parser.add_argument("--num-gpus", type=float, help=f"engine ray: GPUs per actor (export.num_gpus, default "
                        f"{_EXPORT.num_gpus:g})")
    parser.add_argument("--ray-address", help="engine ray: join this Ray cluster (default: $RAY_ADDRESS, else start a "
                        "local Ray)")


def _embedding_flags(parser: argparse.ArgumentParser) -> None:
    """What export and reembed share: the batch size, the config whose export section applies, the engine."""
    parser.add_argument("--batch-size", type=int, help=f"rows per model call (export.batch_size, default "
                        f"{_EXPORT.batch_size})")
    parser.add_argument("--config", type=Path, help="YAML config whose export section applies (keep_snapshots, batch_size, "
                        "engine, actors, num_gpus)")
    _engine_flags(parser)


def _model_and_dataset(parser: argparse.ArgumentParser, model_help: str, dataset_help: str | None = None,
                       version: bool = False) -> None:
    """The registered model and the dataset a command reads (both required), and optionally the dataset's version."""
    parser.add_argument("--model", required=True, help=model_help)
    parser.add_argument("--dataset", required=True, help=dataset_help)
    if version:
        parser.add_argument("--dataset-version")


def _table_flags(parser: argparse.ArgumentParser) -> None:
    """The table a search reads: a model's name (the table holds one version at a time) and its dataset."""
    parser.add_argument("--model", required=True, help="registered model name, e.g. digits-ntxent")
    parser.add_argument("--dataset", help="dataset name (default: the model's only table)")


def _command(commands, name: str, func, help: str, description: str) -> argparse.ArgumentParser:
    """One subparser, naming the handler `main` calls for it."""
    command = commands.add_parser(name, help=help, description=description)
    command.set_defaults(func=func)
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clpipe", description="Contrastive-learning pipeline: ingest, train, evaluate, export.")
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = _command(commands, "ingest", pipeline_commands.INGEST, "read a source into a versioned Parquet dataset",
                      "Read SOURCE into a content-versioned Parquet dataset. Images: 'digits', "
                      "a folder of WebDataset tar shards, or an image folder with one subfolder per class. "
                      "Text (with --text-columns or a config whose data.modality is text): a TSV/CSV/JSONL/"
                      "Parquet file of sentence pairs, or a folder of them (split from the file names). "
                      "Interactions: 'ml-100k' (MovieLens 100k from the recbole wheel), or with a config whose "
                      "data.modality is interactions a CSV/TSV/Parquet file of user-item interactions.")
    ingest.add_argument("source", nargs="?", help="default: the config's data.source")
    ingest.add_argument("--name", help="dataset name (default: the config's data.name)")
    ingest.add_argument("--config", type=Path, help="YAML config whose data section applies (modality, text columns)")
    ingest.add_argument("--limit", type=int, help="keep only the first N good records")
    ingest.add_argument("--max-bad-fraction", type=float, help="fail when more records than this are bad (default 0.05)")
    ingest.add_argument("--text-columns", help="text: the sentence column(s), e.g. 5,6 (0-based positions) or "
                        "query,answer (header names / JSON fields); implies text data")
    ingest.add_argument("--score-column", type=one_column, help="text: the column holding a similarity score")
    ingest.add_argument("--label-column", type=one_column, help="text: the column holding an integer class label")
    ingest.add_argument("--id-column", type=one_column, help="text: the column holding each pair's id "
                        "(default: <file stem>:<line>)")
    ingest.add_argument("--split-column", type=one_column, help="text: the column holding train/val(dev)/test "
                        "(default: the split a file's name gives)")
    ingest.add_argument("--negative-columns", help="text: column(s) holding hard negatives")
    ingest.add_argument("--format", choices=["auto", "tsv", "csv", "jsonl", "parquet"], help="text: file format (default auto)")
    ingest.add_argument("--header", action="store_const", const=True, help="text: TSV/CSV files start with a header line")
    ingest.add_argument("--engine", help="local (default: one process) or ray (Ray Data tasks across the cluster; images "
                        "and text, no --limit, the store reachable from every node) (ingest.engine)")
    ingest.add_argument("--ray-address", help="ray engine: join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    _common(ingest)

    train = _command(commands, "train", pipeline_commands.TRAIN, "train on Ray Train, log to MLflow, register as challenger",
                     "Contrastive training with the configured objective on Ray Train; one MLflow "
                     "run; the encoder is registered as a new model version with alias 'challenger'.")
    train.add_argument("--dataset", help="dataset name (data.name); required unless --resume")
    train.add_argument("--dataset-version", help="dataset version (default: latest)")
    train.add_argument("--resume", metavar="RUN_ID", help="continue this training run from its last checkpoint, "
                       "into the same MLflow run (its own config and dataset apply)")
    _training_flags(train)
    _common(train)

    protocols = " ".join(f"{record.noun.capitalize()}: {record.evaluation}." for record in MODALITIES.values())
    evaluate = _command(commands, "evaluate", pipeline_commands.EVALUATE, "score a registered model and gate the champion alias",
                        f"{protocols} Moves 'champion' if the model beats it on the val split (by registry.min_improvement "
                        "from --config, default 0: strictly); the test split is only reported.")
    _model_and_dataset(evaluate, "MODEL, MODEL@ALIAS or MODEL/VERSION", version=True)
    evaluate.add_argument("--config", type=Path, help="YAML config whose eval, views and registry sections apply")
    _common(evaluate)

    export = _command(commands, "export", embedding_commands.EXPORT, "embed a dataset into a new snapshot of its embedding table",
                      "Embed every row of a dataset with a registered model (usually "
                      "MODEL@champion) into a new snapshot of embeddings/MODEL/DATASET/; CURRENT "
                      "moves to it once it is complete.")
    _model_and_dataset(export, "MODEL@ALIAS or MODEL/VERSION, e.g. digits-ntxent@champion", version=True)
    _embedding_flags(export)
    _common(export)

    reembed = _command(commands, "reembed", embedding_commands.REEMBED,
                       "bring an embedding table up to date with a model and dataset",
                       "Resolve MODEL[@ALIAS] (default alias champion) and the dataset's latest "
                       "version, then against the table's CURRENT snapshot: nothing to do (up_to_date), embed only "
                       "new and changed rows (incremental, same model version), or embed everything into a new "
                       "snapshot (backfill, another model version). "
                       "CURRENT moves only to a complete, checked snapshot.")
    _model_and_dataset(reembed, "MODEL or MODEL@ALIAS (default alias champion) or MODEL/VERSION",
                       "dataset name; its latest version is embedded")
    _embedding_flags(reembed)
    _common(reembed)

    table = _command(commands, "table", reading_commands.show_table, "show the current snapshot of an embedding table",
                     "Print the snapshot CURRENT names for MODEL and DATASET, its lineage "
                     "(parent snapshots still kept) and its counts; exit 1 when there is none.")
    _model_and_dataset(table, "registered model name", "dataset name")
    _common(table)

    recommend = _command(commands, "recommend", reading_commands.recommend,
                         "a user's top-k new items from a registered recommender's table",
                         "Take USER's row of the CURRENT embedding table of a two-tower "
                         "recommender (embeddings/MODEL/DATASET/, kept up to date by refresh), leave out every "
                         "item the user has an interaction with in the dataset (any split), and list the k best "
                         "of the other items by exact search over the table's item rows, with their titles. "
                         "Exit 1 when the snapshot has no row for the user (run `clpipe refresh`).")
    recommend.add_argument("--model", required=True, help="MODEL@ALIAS or MODEL/VERSION, e.g. ml-100k-two-tower@champion")
    recommend.add_argument("--user", required=True, help="the user's id, as the source writes it")
    recommend.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    _common(recommend)

    search = _command(commands, "search", reading_commands.search,
                      "the nearest rows of a model's embedding table to an id, a sentence, an image or a user",
                      "Search the CURRENT snapshot of embeddings/MODEL/DATASET/ through its index. "
                      "--text and --image are embedded with the model version that made the snapshot (named in "
                      "the answer with the snapshot); --id and --user use the table's own rows and read files only. "
                      "--user is `clpipe recommend`: the user's items are left out. Exit 1 on an unknown id or user, "
                      "a query of the wrong modality, or a damaged table.")
    _table_flags(search)
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("--id", help="a row of the table: its nearest other rows")
    query.add_argument("--text", help="a sentence, embedded by the snapshot's text model")
    query.add_argument("--image", type=Path, help="an image file, embedded by the snapshot's image model")
    query.add_argument("--user", help="a recommender's user: the best items the user has not interacted with")
    search.add_argument("-k", type=int, default=10, help="how many rows (1..1000, default 10)")
    _common(search)

    search_start = _command(commands, "search-start", service_commands.search_start,
                            "serve a model's embedding table over HTTP on Ray Serve, following CURRENT",
                            "Start the search service over embeddings/MODEL/DATASET/ in the background: Ray "
                            "Serve replicas answer /search, /recommend and /health and serve a page at /; each "
                            "replica switches to a new snapshot once it has opened it (index and model). Binds "
                            "127.0.0.1 unless --host says otherwise; requires a bearer token when "
                            "CLPIPE_SEARCH_TOKEN is set. Returns once /health answers; `clpipe search-stop` ends it.")
    _table_flags(search_start)
    search_start.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    search_start.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    search_start.add_argument("--replicas", type=int, default=1, help="Ray Serve replicas (default 1)")
    search_start.add_argument("--ray-address", help="run on this Ray cluster (default: start a local Ray)")
    _common(search_start)

    search_stop = _command(commands, "search-stop", service_commands.search_stop, "stop the search service",
                           "Stop the search service `clpipe search-start` started for this workspace.")
    _common(search_stop)

    sweep = _command(commands, "sweep", sweep_commands.SWEEP,
                     "many training runs over a space of settings, stopped early by Ray Tune, best one gated",
                     "Train the config once per trial, each with values drawn from the space file's ranges "
                     "(choice, uniform, loguniform, randint of config keys), on Ray Tune: each trial is a Ray Train "
                     "run scored on the validation split after every epoch, and ASHA stops weak trials early. "
                     "Every trial is an MLflow training run nested under the sweep's run; the best trial's model is "
                     "registered and gated like `clpipe evaluate` (champion only if it beats the champion on val). "
                     "The config is ingested first, as `clpipe run` does.")
    sweep.add_argument("--space", type=Path, help="YAML space file: params (config keys and ranges), trials, "
                       "max_concurrent, seed, scheduler (configs/spaces/)")
    sweep.add_argument("--trials", type=int, help="configurations to try (the space file's trials)")
    sweep.add_argument("--max-concurrent", type=int, help="trials training at once (the space file's max_concurrent)")
    sweep.add_argument("--resume", metavar="SWEEP_RUN_ID", help="continue this sweep whose driver stopped: finished "
                       "trials are kept, the others continue from their checkpoints")
    sweep.add_argument("--config", type=Path, help="YAML config every trial starts from")
    sweep.add_argument("--epochs", type=int, help="epochs per trial, the scheduler's budget (the space file's epochs, "
                       "else train.epochs)")
    sweep.add_argument("--workers", type=int, help="Ray Train workers per trial (train.workers)")
    sweep.add_argument("--limit", type=int, help="ingest only the first N records (data.limit)")
    sweep.add_argument("--ray-address", help="join this Ray cluster (default: $RAY_ADDRESS, else start a local Ray)")
    _common(sweep)

    compare = _command(commands, "compare", reading_commands.compare,
                       "the training runs of an experiment side by side, best first",
                       "Print the training runs of an MLflow experiment (not their nested "
                       "evaluation/export runs): name, objective, dataset version, headline metrics, "
                       "duration, registered version and aliases, best first. Reads the MLflow store only.")
    compare.add_argument("--experiment", help="experiment name (default: the one whose training run started last)")
    compare.add_argument("--sweep", metavar="SWEEP_RUN_ID", help="only this sweep's trials, with the values each was "
                         "given, best first by the sweep's metric")
    primary = ", ".join(f"{metric} for {kind}" for kind, metric in PRIMARY.items())
    compare.add_argument("--metric", help="sort by this metric, e.g. eval.val.linear_probe (default: the modality's "
                         f"primary metric on the validation split: {primary})")
    _common(compare)

    refresh = _command(commands, "refresh", pipeline_commands.REFRESH,
                       "ingest a source again, then bring its embedding table up to date",
                       "Ingest SOURCE into dataset NAME (new or changed files give a new "
                       "version; none give the same one), then reembed it with MODEL (default: the config's "
                       "model name, e.g. NAME-ntxent, at alias champion). What the 'refresh' schedule runs.")
    refresh.add_argument("--source", help="data source (default: the config's data.source)")
    refresh.add_argument("--name", help="dataset name (default: the config's data.name)")
    refresh.add_argument("--model", help="MODEL[@ALIAS] or MODEL/VERSION (default: the config's model name @champion)")
    refresh.add_argument("--config", type=Path, help="YAML config whose data, loss, registry and export sections apply")
    _common(refresh)

    serve = _command(commands, "serve", schedule_commands.serve,
                     "run the deployments (train, refresh, reembed-on-promotion, sweep) in this process",
                     "Register the deployments of flows/prefect_edge/deployments.py (the same ones prefect.yaml "
                     "defines) with this workspace and config on the Prefect server at PREFECT_API_URL and run "
                     "their scheduled and triggered runs here until stopped (Ctrl-C), which pauses their schedules.")
    serve.add_argument("--config", type=Path, help="YAML config the train, refresh and sweep runs read (default: the "
                       "built-in digits)")
    serve.add_argument("--space", type=Path, help="space file the sweep deployment samples (default: "
                       "configs/spaces/<config name>.yaml when there is one, else configs/spaces/digits.yaml)")
    serve.add_argument("--workspace", help="workspace the runs write to (default: $CLPIPE_WORKSPACE or ./workspace)")

    schedule = _command(commands, "schedule", schedule_commands.schedule, "list the deployments, their schedules and next runs",
                        "From the Prefect API when PREFECT_API_URL is set (what is deployed, "
                        "active or not, the scheduled runs); else from flows/prefect_edge/deployments.py with a note.")
    schedule.add_argument("--config", type=Path, help="YAML config the train and refresh runs read")
    _common(schedule)

    run = _command(commands, "run", pipeline_commands.RUN, "the whole pipeline: ingest -> train -> evaluate -> reembed",
                   "Ingest, train, evaluate, then bring the champion's embedding table up to "
                   "date (reembed: up_to_date, incremental or backfill) in one Prefect flow (default: "
                   "digits). `clpipe export` is the explicit full rewrite.")
    run.add_argument("--source", help="data source (data.source)")
    run.add_argument("--name", help="dataset name (data.name)")
    run.add_argument("--limit", type=int, help="ingest only the first N records (data.limit)")
    _training_flags(run)
    _common(run)
    return parser
