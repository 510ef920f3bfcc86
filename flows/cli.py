"""`clpipe`: the command line over the Prefect flows.

Configuration is parsed and validated here, before Prefect, Ray or MLflow are imported, so a bad
flag or config file fails in a fraction of a second with the offending field named.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from cl_core.config import ConfigError, PipelineConfig, load_config, read_config_file
from cl_core.datasets.movielens import NAME as ML_100K
from flows.workspace import Workspace, configure_environment

EXIT_USAGE, EXIT_FAILED = 2, 1


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


def _engine_flags(parser: argparse.ArgumentParser) -> None:
    # No argparse choices for --engine: an unknown engine is a config error naming export.engine.
    parser.add_argument("--engine", help="local (embed in this process, the default) or ray (Ray Data reads the "
                        "dataset's parts and an actor pool embeds them) (export.engine)")
    parser.add_argument("--actors", type=int, help="engine ray: actors in the pool, each loads the model once "
                        "(export.actors, default 2)")
    parser.add_argument("--num-gpus", type=float, help="engine ray: GPUs per actor (export.num_gpus, default 0)")
    parser.add_argument("--ray-address", help="engine ray: join this Ray cluster (default: $RAY_ADDRESS, else start a "
                        "local Ray)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clpipe", description="Contrastive-learning pipeline: ingest, train, evaluate, export.")
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="read a source into a versioned Parquet dataset",
                                 description="Read SOURCE into a content-versioned Parquet dataset. Images: 'digits', "
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
    ingest.add_argument("--score-column", type=_one_column, help="text: the column holding a similarity score")
    ingest.add_argument("--label-column", type=_one_column, help="text: the column holding an integer class label")
    ingest.add_argument("--id-column", type=_one_column, help="text: the column holding each pair's id "
                        "(default: <file stem>:<line>)")
    ingest.add_argument("--split-column", type=_one_column, help="text: the column holding train/val(dev)/test "
                        "(default: the split a file's name gives)")
    ingest.add_argument("--negative-columns", help="text: column(s) holding hard negatives")
    ingest.add_argument("--format", choices=["auto", "tsv", "csv", "jsonl", "parquet"], help="text: file format (default auto)")
    ingest.add_argument("--header", action="store_const", const=True, help="text: TSV/CSV files start with a header line")
    ingest.add_argument("--engine", help="local (default: one process) or ray (Ray Data tasks across the cluster; images "
                        "and text, no --limit, the store reachable from every node) (ingest.engine)")
    ingest.add_argument("--ray-address", help="ray engine: join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    _common(ingest)

    train = commands.add_parser("train", help="train on Ray Train, log to MLflow, register as challenger",
                                description="Contrastive training with the configured objective on Ray Train; one MLflow "
                                "run; the encoder is registered as a new model version with alias 'challenger'.")
    train.add_argument("--dataset", help="dataset name (data.name); required unless --resume")
    train.add_argument("--dataset-version", help="dataset version (default: latest)")
    train.add_argument("--resume", metavar="RUN_ID", help="continue this training run from its last checkpoint, "
                       "into the same MLflow run (its own config and dataset apply)")
    _training_flags(train)
    _common(train)

    evaluate = commands.add_parser("evaluate", help="score a registered model and gate the champion alias",
                                   description="Images: kNN top-1, linear probe, alignment and uniformity on the test "
                                   "split, next to the raw-pixel baseline. Text: STS correlation and pair retrieval, next "
                                   "to the pretrained encoder. Interactions: recall, NDCG, MRR and coverage at 10 and 20 on the "
                                   "test split, next to most-popular and BPR-MF. Moves 'champion' if the model beats it.")
    evaluate.add_argument("--model", required=True, help="MODEL, MODEL@ALIAS or MODEL/VERSION")
    evaluate.add_argument("--dataset", required=True)
    evaluate.add_argument("--dataset-version")
    evaluate.add_argument("--config", type=Path, help="YAML config whose eval and views sections apply")
    _common(evaluate)

    export = commands.add_parser("export", help="embed a dataset into a new snapshot of its embedding table",
                                 description="Embed every row of a dataset with a registered model (usually "
                                 "MODEL@champion) into a new snapshot of embeddings/MODEL/DATASET/; CURRENT "
                                 "moves to it once it is complete.")
    export.add_argument("--model", required=True, help="MODEL@ALIAS or MODEL/VERSION, e.g. digits-ntxent@champion")
    export.add_argument("--dataset", required=True)
    export.add_argument("--dataset-version")
    export.add_argument("--batch-size", type=int, help="rows per model call (export.batch_size, default 1024)")
    export.add_argument("--config", type=Path, help="YAML config whose export section applies (keep_snapshots, batch_size, "
                        "engine, actors, num_gpus)")
    _engine_flags(export)
    _common(export)

    reembed = commands.add_parser("reembed", help="bring an embedding table up to date with a model and dataset",
                                  description="Resolve MODEL[@ALIAS] (default alias champion) and the dataset's latest "
                                  "version, then against the table's CURRENT snapshot: nothing to do (up_to_date), embed only "
                                  "new and changed rows (incremental, same model version), or embed everything into a new "
                                  "snapshot (backfill, another model version). "
                                  "CURRENT moves only to a complete, checked snapshot.")
    reembed.add_argument("--model", required=True, help="MODEL or MODEL@ALIAS (default alias champion) or MODEL/VERSION")
    reembed.add_argument("--dataset", required=True, help="dataset name; its latest version is embedded")
    reembed.add_argument("--batch-size", type=int, help="rows per model call (export.batch_size, default 1024)")
    reembed.add_argument("--config", type=Path, help="YAML config whose export section applies (keep_snapshots, batch_size, "
                         "engine, actors, num_gpus)")
    _engine_flags(reembed)
    _common(reembed)

    table = commands.add_parser("table", help="show the current snapshot of an embedding table",
                                description="Print the snapshot CURRENT names for MODEL and DATASET, its lineage "
                                "(parent snapshots still kept) and its counts; exit 1 when there is none.")
    table.add_argument("--model", required=True, help="registered model name")
    table.add_argument("--dataset", required=True, help="dataset name")
    _common(table)

    recommend = commands.add_parser("recommend", help="a user's top-k new items from a registered recommender's table",
                                    description="Take USER's row of the CURRENT embedding table of a two-tower "
                                    "recommender (embeddings/MODEL/DATASET/, kept up to date by refresh), leave out every "
                                    "item the user has an interaction with in the dataset (any split), and list the k best "
                                    "of the other items by exact search over the table's item rows, with their titles. "
                                    "Exit 1 when the snapshot has no row for the user (run `clpipe refresh`).")
    recommend.add_argument("--model", required=True, help="MODEL@ALIAS or MODEL/VERSION, e.g. ml-100k-two-tower@champion")
    recommend.add_argument("--user", required=True, help="the user's id, as the source writes it")
    recommend.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    _common(recommend)

    compare = commands.add_parser("compare", help="the training runs of an experiment side by side, best first",
                                  description="Print the training runs of an MLflow experiment (not their nested "
                                  "evaluation/export runs): name, objective, dataset version, headline metrics, "
                                  "duration, registered version and aliases, best first. Reads the MLflow store only.")
    compare.add_argument("--experiment", help="experiment name (default: the one whose training run started last)")
    compare.add_argument("--metric", help="sort by this metric, e.g. eval.linear_probe (default: the modality's "
                         "primary metric: eval.knn_top1 for images, eval.sts_spearman for text)")
    _common(compare)

    refresh = commands.add_parser("refresh", help="ingest a source again, then bring its embedding table up to date",
                                  description="Ingest SOURCE into dataset NAME (new or changed files give a new "
                                  "version; none give the same one), then reembed it with MODEL (default: the config's "
                                  "model name, e.g. NAME-ntxent, at alias champion). What the 'refresh' schedule runs.")
    refresh.add_argument("--source", help="data source (default: the config's data.source)")
    refresh.add_argument("--name", help="dataset name (default: the config's data.name)")
    refresh.add_argument("--model", help="MODEL[@ALIAS] or MODEL/VERSION (default: the config's model name @champion)")
    refresh.add_argument("--config", type=Path, help="YAML config whose data, loss, registry and export sections apply")
    _common(refresh)

    serve = commands.add_parser("serve", help="run the deployments (train, refresh, reembed-on-promotion) in this process",
                                description="Register the deployments of flows/deployments.py (the same ones prefect.yaml "
                                "defines) with this workspace and config on the Prefect server at PREFECT_API_URL and run "
                                "their scheduled and triggered runs here until stopped (Ctrl-C), which pauses their schedules.")
    serve.add_argument("--config", type=Path, help="YAML config the train and refresh runs read (default: the built-in digits)")
    serve.add_argument("--workspace", help="workspace the runs write to (default: $CLPIPE_WORKSPACE or ./workspace)")

    schedule = commands.add_parser("schedule", help="list the deployments, their schedules and next runs",
                                   description="From the Prefect API when PREFECT_API_URL is set (what is deployed, "
                                   "active or not, the scheduled runs); else from flows/deployments.py with a note.")
    schedule.add_argument("--config", type=Path, help="YAML config the train and refresh runs read")
    _common(schedule)

    run = commands.add_parser("run", help="the whole pipeline: ingest -> train -> evaluate -> reembed",
                              description="Ingest, train, evaluate, then bring the champion's embedding table up to "
                              "date (reembed: up_to_date, incremental or backfill) in one Prefect flow (default: "
                              "digits). `clpipe export` is the explicit full rewrite.")
    run.add_argument("--source", help="data source (data.source)")
    run.add_argument("--name", help="dataset name (data.name)")
    run.add_argument("--limit", type=int, help="ingest only the first N records (data.limit)")
    _training_flags(run)
    _common(run)
    return parser


def _columns(text: str | None) -> list[str | int] | None:
    """"5,6" -> [5, 6]; "query,answer" -> ["query", "answer"]."""
    if text is None:
        return None
    return [int(part) if part.strip().isdigit() else part.strip() for part in text.split(",") if part.strip()]


def _one_column(text: str) -> str | int:
    """"4" -> 4 (a 0-based position); "score" -> "score" (a header name / field)."""
    columns = _columns(text)
    if not columns or len(columns) > 1:
        raise argparse.ArgumentTypeError(f"expected one column (a 0-based position or a name), got {text!r}")
    return columns[0]


def _config_sets_modality(path: Path | None) -> bool:
    try:
        data = read_config_file(path).get("data") if path else None
    except ConfigError:
        return False  # load_config reports it
    return isinstance(data, dict) and data.get("modality") is not None


def _ingested_kind(args: argparse.Namespace, workspace: Workspace | None) -> str | None:
    """"image" or "text": what `train --dataset NAME` holds, when it has been ingested."""
    if args.command != "train" or not getattr(args, "dataset", None) or workspace is None:
        return None
    from cl_core.datasets.errors import DatasetNotFoundError
    from cl_core.datasets.layout import version_folder

    try:
        folder = version_folder(Path(workspace.datasets), args.dataset, args.dataset_version)
    except DatasetNotFoundError:
        return None  # the train flow's dataset check says so
    from cl_core.datasets.manifest import manifest_kind, read_manifest

    return manifest_kind(read_manifest(folder))


def _config(args: argparse.Namespace, workspace: Workspace | None = None) -> PipelineConfig:
    """The validated config: the --config file (or defaults) with the flags on top. `train`
    takes the modality from its dataset unless the config or a flag sets it, so
    `clpipe train --dataset faq` on ingested pairs trains text without a config file."""
    text_columns = _columns(getattr(args, "text_columns", None))
    source = getattr(args, "source", None)
    overrides: dict[str, Any] = {
        # "ml-100k" names the built-in MovieLens interactions, as "digits" names images.
        "data.modality": "text" if text_columns else "interactions" if source == ML_100K else None,
        "data.text.text_columns": text_columns,
        "data.text.score_column": getattr(args, "score_column", None),
        "data.text.label_column": getattr(args, "label_column", None),
        "data.text.id_column": getattr(args, "id_column", None),
        "data.text.split_column": getattr(args, "split_column", None),
        "data.text.negative_columns": _columns(getattr(args, "negative_columns", None)),
        "data.text.format": getattr(args, "format", None),
        "data.text.header": getattr(args, "header", None),
        "data.max_bad_fraction": getattr(args, "max_bad_fraction", None),
        "data.name": getattr(args, "dataset", None) or getattr(args, "name", None),
        "data.version": getattr(args, "dataset_version", None),
        "data.source": source,
        "data.limit": getattr(args, "limit", None),
        "data.image_size": getattr(args, "image_size", None),
        "ingest.engine": getattr(args, "engine", None),
        "train.workers": getattr(args, "workers", None),
        "train.epochs": getattr(args, "epochs", None),
        "train.batch_size": getattr(args, "batch_size", None),
        "train.lr": getattr(args, "lr", None),
        "train.gpu": getattr(args, "gpu", None),
        "loss.temperature": getattr(args, "temperature", None),
        "registry.model_name": getattr(args, "model_name", None),
    }
    new_source = overrides["data.source"] and overrides["data.source"] != "digits"
    if new_source and not overrides["data.name"] and getattr(args, "config", None) is None:
        # A new source without --name gets its own dataset name, not the default "digits".
        source_name = Path(overrides["data.source"]).resolve().name
        overrides["data.name"] = re.sub(r"[^A-Za-z0-9._-]+", "-", source_name).strip("-.") or None
    kind = _ingested_kind(args, workspace)
    if kind and not overrides["data.modality"] and not _config_sets_modality(getattr(args, "config", None)):
        overrides["data.modality"] = kind
    return load_config(getattr(args, "config", None), overrides)


def _print_run_summary(summary: dict[str, Any], workspace: Workspace) -> None:
    ingested, trained, evaluated, table = (summary[k] for k in ("ingest", "train", "evaluate", "reembed"))
    metrics, baseline = evaluated["metrics"], evaluated["baseline"]
    lines = [
        "",
        "clpipe run finished",
        f"  dataset        {ingested['name']}@{ingested['version']}  "
        f"({ingested['rows']} rows {ingested['splits']}, {ingested['quarantined']} quarantined)",
        f"  training run   {trained['run_id']}  (final loss {trained['train_metrics'].get('loss', float('nan')):.4f}, "
        f"{trained['train_metrics'].get('samples_per_s', 0):.0f} samples/s)",
        *_metric_lines(metrics, baseline, evaluated.get("split", "test")),
        f"  model          {trained['model_name']} v{trained['model_version']}  aliases {evaluated['promotion']['aliases']}",
        f"  promotion      {evaluated['promotion']['reason']}",
        _table_line(table),
        f"  compare runs   {mlflow_ui_command(workspace)}",
    ]
    if summary.get("log"):
        lines.append(f"  log            {summary['log']}")
    print("\n".join(lines))


def _table_line(table: dict[str, Any]) -> str:
    """What the run did to the champion's embedding table: reembed's action and the snapshot."""
    action = table["action"]
    if action == "superseded":
        return f"  embeddings     superseded, nothing written: {table.get('reason', '')}"
    where = f"{table['table_path']}/{table['snapshot']}" if table.get("snapshot") else table["table_path"]
    return (f"  embeddings     {action}  {where}  ({table['rows']} rows, {table['rows_embedded']} embedded, "
            f"model v{table['model_version']})")


def _metric_lines(metrics: dict[str, float], baseline: dict[str, float], split: str) -> list[str]:
    if "ndcg_at_10" in metrics:  # a recommender, next to its baselines
        return [f"  {label:<14} {metrics[key]:.4f}   most-popular {baseline[f'popular_{key}']:.4f}   "
                f"BPR-MF {baseline[f'mf_{key}']:.4f}   ({split} split)"
                for key, label in (("ndcg_at_10", "NDCG@10"), ("recall_at_20", "recall@20"), ("mrr", "MRR"))]
    if "knn_top1" in metrics:
        def line(label: str, key: str) -> str:
            before = baseline.get(f"pretrained_{key}")
            pretrained = f"   pretrained {before:.4f}" if before is not None else ""
            return f"  {label:<14} {metrics[key]:.4f}{pretrained}   raw pixels {baseline[f'raw_{key}']:.4f}"

        return [
            line("kNN top-1", "knn_top1"),
            line("linear probe", "linear_probe"),
            f"  alignment      {metrics['alignment']:.4f}   uniformity {metrics['uniformity']:.4f}",
        ]
    lines = []
    for key, label in (("sts_spearman", "STS Spearman"), ("sts_pearson", "STS Pearson"), ("recall_at_1", "recall@1"),
                       ("recall_at_10", "recall@10"), ("mrr_at_10", "MRR@10")):
        if key in metrics:
            before = baseline.get(f"pretrained_{key}")
            pretrained = f"   pretrained {before:.4f}" if before is not None else ""
            lines.append(f"  {label:<14} {metrics[key]:.4f}{pretrained}   ({split} split)")
    return lines


def mlflow_ui_command(workspace: Workspace) -> str:
    return f"mlflow ui --backend-store-uri {workspace.tracking_uri} --host 127.0.0.1 --port 5000"


def _command_config(args: argparse.Namespace, workspace: Workspace) -> PipelineConfig | None:
    """The validated config of a command (None for `train --resume`: the run's own applies)."""
    if args.command == "evaluate":
        return load_config(args.config)
    if args.command in ("export", "reembed"):
        return load_config(args.config, {"export.batch_size": args.batch_size, "export.engine": args.engine,
                                         "export.actors": args.actors, "export.num_gpus": args.num_gpus})
    if args.command == "train" and not (args.dataset or args.resume):
        raise ConfigError("train needs --dataset NAME (or --resume RUN_ID)")
    if args.command == "ingest" and not (args.source or args.config):
        raise ConfigError("ingest needs a SOURCE (or --config with data.source)")
    if getattr(args, "resume", None):
        return None
    return _config(args, workspace)


def _check_before_services(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig | None) -> None:
    """What needs no service, in the order the flows check it, so that a wrong name fails in a
    second instead of after Prefect's server and Ray have started."""
    from flows import preflight

    command = args.command
    if command in ("ingest", "run", "refresh") and cfg.data.modality == "interactions":
        preflight.check_interactions_source(cfg.data.source, cfg.data.interactions)
    elif command in ("ingest", "run", "refresh"):
        preflight.check_source(cfg.data.source, cfg.data.modality == "text")
    elif command == "train" and cfg is not None:
        preflight.check_dataset(workspace.datasets, cfg.data.name, cfg.data.version)
    elif command == "evaluate":
        preflight.check_dataset(workspace.datasets, args.dataset, args.dataset_version)
        preflight.check_model(workspace.tracking_uri, args.model)
    elif command in ("export", "reembed"):
        # reembed follows the champion when given a bare NAME (flows.reembed_flow.default_champion).
        preflight.check_model(workspace.tracking_uri, args.model, "champion" if command == "reembed" else None)
        preflight.check_dataset(workspace.datasets, args.dataset, getattr(args, "dataset_version", None))


def _execute(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig | None) -> dict[str, Any]:
    root = str(workspace.root)
    if args.command == "ingest":
        from flows.ingest_flow import ingest_flow, source_specs

        data = cfg.data
        return ingest_flow(data.source, data.name, root, limit=data.limit, max_bad_fraction=data.max_bad_fraction,
                           **source_specs(data), engine=cfg.ingest.engine, ray_address=args.ray_address)
    if args.command == "evaluate":
        from flows.evaluate_flow import evaluate_flow

        return evaluate_flow(args.model, args.dataset, root, args.dataset_version,
                             cfg.eval.model_dump(mode="json"), cfg.views.model_dump(mode="json"))
    if args.command == "export":
        from flows.export_flow import export_flow

        export = cfg.export
        return export_flow(args.model, args.dataset, root, args.dataset_version, export.batch_size, export.keep_snapshots,
                           export.engine, export.actors, export.num_gpus, args.ray_address,
                           snapshot_grace=export.snapshot_grace)

    if args.command == "reembed":
        from flows.reembed_flow import reembed_flow

        export = cfg.export
        return reembed_flow(args.model, args.dataset, root, export.batch_size, export.keep_snapshots, export.engine,
                            export.actors, export.num_gpus, args.ray_address, snapshot_grace=export.snapshot_grace)

    if args.command == "refresh":
        from flows.refresh_flow import refresh_flow

        data = cfg.data  # the source and name `ingest` would use for the same flags
        return refresh_flow(root, str(args.config) if args.config else None, data.source, data.name, args.model)

    if args.command == "train" and args.resume:
        from flows.train_flow import train_flow

        return train_flow(None, root, args.ray_address, None, resume_run_id=args.resume)
    config_file = str(args.config) if args.config else None
    if args.command == "train":
        from flows.train_flow import train_flow

        return train_flow(cfg.model_dump(mode="json"), root, args.ray_address, config_file)
    from flows.pipeline_flow import pipeline_flow

    summary = pipeline_flow(cfg.model_dump(mode="json"), root, args.ray_address, config_file)
    summary["mlflow_ui"] = mlflow_ui_command(workspace)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    workspace = Workspace.resolve(args.workspace)
    if args.command == "table":
        return _show_table(args, workspace)
    if args.command == "recommend":
        from flows.recommend import recommend_command

        return recommend_command(workspace, args.model, args.user, args.k, args.json)
    if args.command == "compare":
        from flows.compare import compare_command

        return compare_command(workspace.tracking_uri, args.experiment, args.metric, args.json)
    if args.command in ("serve", "schedule"):
        return _schedules(args, workspace)
    log = None
    try:
        cfg = _command_config(args, workspace)  # fail on a bad config before anything else happens
        _check_before_services(args, workspace, cfg)
        workspace.create()
        configure_environment(workspace)
        with _console(args, workspace) as log:
            try:
                summary = _execute(args, workspace, cfg)
            finally:
                _shutdown_ray()  # inside: Ray's last forwarded lines belong in the log
                _flush_prefect_logs()
    except ConfigError as error:
        print(f"clpipe: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - the CLI reports any failure in one line
        print(f"clpipe {args.command} failed: {type(error).__name__}: {error}", file=sys.stderr)
        if log is not None:
            print(f"  log: {log.path}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        _shutdown_ray()
    summary = {"command": args.command, "workspace": str(workspace.root), **summary}
    if log is not None:
        summary["log"] = str(log.path)
    sys.stdout.flush()
    if args.json:
        print(json.dumps(summary, default=str), flush=True)
    elif args.command == "run":
        _print_run_summary(summary, workspace)
    else:
        print(json.dumps(summary, indent=2, default=str), flush=True)
    return 0


def _console(args: argparse.Namespace, workspace: Workspace) -> AbstractContextManager:
    """Progress on the console and the services' output in the run's log file (flows/console.py),
    or with --verbose everything on the console."""
    if args.verbose:
        return nullcontext()
    from flows.console import quiet_run

    return quiet_run(workspace.logs, args.command)


def _show_table(args: argparse.Namespace, workspace: Workspace) -> int:
    """Reads files only: no Prefect, MLflow or Ray starts for it."""
    from cl_core.embeddings import EmbeddingTable, EmbeddingTableError, describe_table, format_table

    try:
        described = describe_table(EmbeddingTable(workspace.embeddings, args.model, args.dataset))
    except (EmbeddingTableError, ValueError) as error:
        print(f"clpipe table failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"command": "table", "workspace": str(workspace.root), **described}))
    else:
        print(format_table(described))
    return 0


def _schedules(args: argparse.Namespace, workspace: Workspace) -> int:
    config_file = str(args.config.resolve()) if args.config else None
    try:
        if config_file:
            load_config(config_file)
    except ConfigError as error:
        print(f"clpipe: {error}", file=sys.stderr)
        return EXIT_USAGE
    workspace.create()
    configure_environment(workspace)
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    if args.command == "schedule":
        from flows.schedule_listing import format_schedules, list_schedules

        listed = list_schedules(str(workspace.root), config_file, api_url)
        print(json.dumps({"command": "schedule", **listed}, default=str) if args.json else format_schedules(listed))
        return 0
    if not api_url:
        print("clpipe serve needs a Prefect server (its temporary server runs no scheduler): start one with "
              "`infra/local_stack.sh start` or `prefect server start`, then export PREFECT_API_URL=http://HOST:PORT/api",
              file=sys.stderr)
        return EXIT_USAGE
    from prefect import serve

    from flows.deployments import runner_deployments

    print(f"clpipe serve: workspace {workspace.root}, config {config_file or 'built-in defaults'}, API {api_url}", flush=True)
    serve(*runner_deployments(str(workspace.root), config_file))
    return 0


def _shutdown_ray() -> None:
    # Ray's log monitor prints worker output asynchronously; stop it so the JSON line stays last.
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _flush_prefect_logs() -> None:
    # Prefect's temporary server stops at interpreter exit, before Prefect's log worker drains
    # its queue; logs still queued then print "Error logging to API" after the summary. Send
    # them while the server is up.
    if "prefect" in sys.modules:
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()  # outside an event loop: sends the queued logs, waits up to 5 s


if __name__ == "__main__":
    sys.exit(main())
