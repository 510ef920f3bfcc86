"""The commands that make datasets and models: `ingest`, `train`, `evaluate`, `refresh` (ingest
then reembed) and `run` (the whole pipeline), each a config, a check and a flow."""

from __future__ import annotations

import argparse
from typing import Any

from cl_core.config import ConfigError, PipelineConfig, load_config
from flows.cli.flow_command import FlowCommand
from flows.cli.overrides import config_from_flags
from flows.cli.summary import mlflow_ui_command, print_run_summary
from flows.workspace import Workspace


def _check_source(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig) -> None:
    from flows import preflight

    preflight.check_data_source(cfg.data)


def _ingest_config(args: argparse.Namespace, workspace: Workspace) -> PipelineConfig:
    if not (args.source or args.config):
        raise ConfigError("ingest needs a SOURCE (or --config with data.source)")
    return config_from_flags(args, workspace)


def _ingest(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig) -> dict[str, Any]:
    from flows.ingest_flow import ingest_flow, source_specs

    data = cfg.data
    return ingest_flow(data.source, data.name, str(workspace.root), limit=data.limit,
                       max_bad_fraction=data.max_bad_fraction, **source_specs(data), engine=cfg.ingest.engine,
                       ray_address=args.ray_address)


INGEST = FlowCommand(_ingest_config, _check_source, _ingest)


def _train_config(args: argparse.Namespace, workspace: Workspace) -> PipelineConfig | None:
    """None for `train --resume`: the run's own config applies."""
    if not (args.dataset or args.resume):
        raise ConfigError("train needs --dataset NAME (or --resume RUN_ID)")
    if args.resume:
        return None
    return config_from_flags(args, workspace)


def _check_train(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig | None) -> None:
    from flows import preflight

    if cfg is not None:
        preflight.check_dataset(workspace.datasets, cfg.data.name, cfg.data.version)


def _train(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig | None) -> dict[str, Any]:
    from flows.train_flow import train_flow

    if args.resume:
        return train_flow(None, str(workspace.root), args.ray_address, None, resume_run_id=args.resume)
    config_file = str(args.config) if args.config else None
    return train_flow(cfg, str(workspace.root), args.ray_address, config_file)


TRAIN = FlowCommand(_train_config, _check_train, _train)


def _evaluate_config(args: argparse.Namespace, workspace: Workspace) -> PipelineConfig:
    return load_config(args.config)


def _check_evaluate(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig) -> None:
    from flows import preflight

    preflight.check_dataset(workspace.datasets, args.dataset, args.dataset_version)
    preflight.check_model(workspace.tracking_uri, args.model)


def _evaluate(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig) -> dict[str, Any]:
    from flows.evaluate_flow import evaluate_flow

    return evaluate_flow(args.model, args.dataset, str(workspace.root), args.dataset_version,
                         cfg.eval, cfg.views, cfg.registry)


EVALUATE = FlowCommand(_evaluate_config, _check_evaluate, _evaluate)


def _refresh(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig) -> dict[str, Any]:
    from flows.refresh_flow import refresh_flow

    data = cfg.data  # the source and name `ingest` would use for the same flags
    return refresh_flow(str(workspace.root), str(args.config) if args.config else None, data.source, data.name,
                        args.model)


REFRESH = FlowCommand(config_from_flags, _check_source, _refresh)


def _run(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig) -> dict[str, Any]:
    from flows.pipeline_flow import pipeline_flow

    config_file = str(args.config) if args.config else None
    summary = pipeline_flow(cfg, str(workspace.root), args.ray_address, config_file)
    summary["mlflow_ui"] = mlflow_ui_command(workspace)
    return summary


RUN = FlowCommand(config_from_flags, _check_source, _run, human_summary=print_run_summary)
