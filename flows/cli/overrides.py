"""From flags to the validated config: the --config file (or the defaults) with the flags on top,
validated before Prefect, Ray or MLflow are imported, so a bad flag or file fails in a fraction of
a second with the offending field named."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from cl_core.config import ConfigError, PipelineConfig, load_config, read_config_file
from cl_core.datasets.movielens import NAME as ML_100K
from cl_core.modalities.interactions import INTERACTIONS
from cl_core.modalities.text import TEXT
from flows.workspace import Workspace


def columns(text: str | None) -> list[str | int] | None:
    """"5,6" -> [5, 6]; "query,answer" -> ["query", "answer"]."""
    if text is None:
        return None
    return [int(part) if part.strip().isdigit() else part.strip() for part in text.split(",") if part.strip()]


def one_column(text: str) -> str | int:
    """"4" -> 4 (a 0-based position); "score" -> "score" (a header name / field)."""
    parsed = columns(text)
    if not parsed or len(parsed) > 1:
        raise argparse.ArgumentTypeError(f"expected one column (a 0-based position or a name), got {text!r}")
    return parsed[0]


def _config_sets_modality(path: Path | None) -> bool:
    try:
        data = read_config_file(path).get("data") if path else None
    except ConfigError:
        return False  # load_config reports it
    return isinstance(data, dict) and data.get("modality") is not None


def _ingested_kind(args: argparse.Namespace, workspace: Workspace | None) -> str | None:
    """The modality `train --dataset NAME` holds (its manifest's kind), when it has been ingested."""
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


def config_from_flags(args: argparse.Namespace, workspace: Workspace | None = None) -> PipelineConfig:
    """The validated config: the --config file (or defaults) with the flags on top. `train`
    takes the modality from its dataset unless the config or a flag sets it, so
    `clpipe train --dataset faq` on ingested pairs trains text without a config file."""
    text_columns = columns(getattr(args, "text_columns", None))
    source = getattr(args, "source", None)
    overrides: dict[str, Any] = {
        # "ml-100k" names the built-in MovieLens interactions, as "digits" names images.
        "data.modality": TEXT.name if text_columns else INTERACTIONS.name if source == ML_100K else None,
        "data.text.text_columns": text_columns,
        "data.text.score_column": getattr(args, "score_column", None),
        "data.text.label_column": getattr(args, "label_column", None),
        "data.text.id_column": getattr(args, "id_column", None),
        "data.text.split_column": getattr(args, "split_column", None),
        "data.text.negative_columns": columns(getattr(args, "negative_columns", None)),
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


def export_config(args: argparse.Namespace, workspace: Workspace) -> PipelineConfig:
    """`export` and `reembed`: the --config file's export section with the engine flags on top."""
    return load_config(args.config, {"export.batch_size": args.batch_size, "export.engine": args.engine,
                                     "export.actors": args.actors, "export.num_gpus": args.num_gpus})
