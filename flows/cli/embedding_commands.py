"""The commands that write an embedding table: `export` (a full new snapshot) and `reembed`
(up to date, incremental or backfill against CURRENT)."""

from __future__ import annotations

import argparse
from typing import Any

from cl_core.config import PipelineConfig
from flows.cli.flow_command import FlowCommand
from flows.cli.overrides import export_config
from flows.workspace import Workspace


def _check_export(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig) -> None:
    from flows import preflight

    preflight.check_model(workspace.tracking_uri, args.model, None)
    preflight.check_dataset(workspace.datasets, args.dataset, args.dataset_version)


def _export(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig) -> dict[str, Any]:
    from flows.export_flow import export_flow

    return export_flow(args.model, args.dataset, str(workspace.root), args.dataset_version, cfg.export,
                       args.ray_address)


EXPORT = FlowCommand(export_config, _check_export, _export)


def _check_reembed(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig) -> None:
    from flows import preflight

    # reembed follows the champion when given a bare NAME (flows.reembed_flow.default_champion).
    preflight.check_model(workspace.tracking_uri, args.model, "champion")
    preflight.check_dataset(workspace.datasets, args.dataset, None)  # its latest version


def _reembed(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig) -> dict[str, Any]:
    from flows.reembed_flow import reembed_flow

    return reembed_flow(args.model, args.dataset, str(workspace.root), cfg.export, args.ray_address)


REEMBED = FlowCommand(export_config, _check_reembed, _reembed)
