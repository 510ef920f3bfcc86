"""The commands over the deployments of flows/prefect_edge/deployments.py: `schedule` lists them, `serve` runs
them in this process against the Prefect server at PREFECT_API_URL."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cl_core.config import ConfigError, load_config
from flows.cli.flow_command import EXIT_USAGE
from flows.run_description import REPO
from flows.workspace import Workspace, configure_environment


def space_for(config_file: str | None, space: Path | None) -> str:
    """The sweep deployment's space file: --space, else the shipped space named like the config
    (configs/spaces/<config stem>.yaml), else the digits space; absolute, as the runs' folder may differ."""
    from flows.prefect_edge.deployments import DEFAULT_SPACE

    if space is not None:
        return str(space.resolve())
    named = REPO / "configs" / "spaces" / f"{Path(config_file).stem}.yaml" if config_file else None
    return str(named if named is not None and named.is_file() else REPO / DEFAULT_SPACE)


def _prepare(args: argparse.Namespace, workspace: Workspace) -> tuple[str | None, str, str | None] | int:
    """(the config file, the sweep's space file, PREFECT_API_URL) once both are valid and the workspace
    set up; EXIT_USAGE for a bad config or space."""
    from cl_core.config.sweep_space import load_space

    config_file = str(args.config.resolve()) if args.config else None
    space_file = space_for(config_file, getattr(args, "space", None))
    try:
        load_space(space_file, load_config(config_file))
    except ConfigError as error:
        print(f"clpipe: {error}", file=sys.stderr)
        if "sweep space" in str(error):
            print("  (the sweep deployment's space: pass one that fits the config with --space)", file=sys.stderr)
        return EXIT_USAGE
    workspace.create()
    configure_environment(workspace)
    from prefect.settings import PREFECT_API_URL

    return config_file, space_file, PREFECT_API_URL.value()


def schedule(args: argparse.Namespace, workspace: Workspace) -> int:
    prepared = _prepare(args, workspace)
    if isinstance(prepared, int):
        return prepared
    config_file, _, api_url = prepared
    from flows.prefect_edge.schedule_listing import format_schedules, list_schedules

    listed = list_schedules(str(workspace.root), config_file, api_url)
    print(json.dumps({"command": "schedule", **listed}, default=str) if args.json else format_schedules(listed))
    return 0


def serve(args: argparse.Namespace, workspace: Workspace) -> int:
    prepared = _prepare(args, workspace)
    if isinstance(prepared, int):
        return prepared
    config_file, space_file, api_url = prepared
    if not api_url:
        print("clpipe serve needs a Prefect server (its temporary server runs no scheduler): start one with "
              "`infra/local_stack.sh start` or `prefect server start`, then export PREFECT_API_URL=http://HOST:PORT/api",
              file=sys.stderr)
        return EXIT_USAGE
    from prefect import serve as serve_deployments

    from flows.prefect_edge.deployments import runner_deployments

    print(f"clpipe serve: workspace {workspace.root}, config {config_file or 'built-in defaults'}, API {api_url}", flush=True)
    serve_deployments(*runner_deployments(str(workspace.root), config_file, space_file))
    return 0
