"""The path every command that runs a Prefect flow takes: validate its config, check what needs no
service, then run the flow with the services' output in the run's log, stop Ray and send Prefect's
last logs, and print the summary. A command gives `FlowCommand` its own three steps."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from cl_core.config import ConfigError, PipelineConfig
from flows.cli.summary import print_summary
from flows.cli.teardown import flush_prefect_logs, shutdown_ray
from flows.workspace import Workspace, configure_environment

EXIT_USAGE, EXIT_FAILED = 2, 1

Summary = dict[str, Any]


@dataclass(frozen=True)
class FlowCommand:
    """A command's steps; calling it with the parsed flags and the workspace runs them and gives the
    exit code: 0, EXIT_USAGE for a bad flag or config, EXIT_FAILED for any other failure."""

    # The validated config (None for `train --resume`: the run's own applies).
    config: Callable[[argparse.Namespace, Workspace], PipelineConfig | None]
    # What needs no service, in the order the flows check it, so that a wrong name fails in a
    # second instead of after Prefect's server and Ray have started.
    check: Callable[[argparse.Namespace, Workspace, PipelineConfig | None], None]
    # Run the flow; its summary.
    execute: Callable[[argparse.Namespace, Workspace, PipelineConfig | None], Summary]
    # How the summary reads without --json (default: indented JSON).
    human_summary: Callable[[Summary, Workspace], None] | None = None

    def __call__(self, args: argparse.Namespace, workspace: Workspace) -> int:
        log = None
        try:
            cfg = self.config(args, workspace)  # fail on a bad config before anything else happens
            self.check(args, workspace, cfg)
            workspace.create()
            configure_environment(workspace)
            with _console(args, workspace) as log:
                try:
                    summary = self.execute(args, workspace, cfg)
                finally:
                    shutdown_ray()  # inside: Ray's last forwarded lines belong in the log
                    flush_prefect_logs()
        except ConfigError as error:
            print(f"clpipe: {error}", file=sys.stderr)
            return EXIT_USAGE
        except Exception as error:  # noqa: BLE001 - the CLI reports any failure in one line
            print(f"clpipe {args.command} failed: {type(error).__name__}: {error}", file=sys.stderr)
            if log is not None:
                print(f"  log: {log.path}", file=sys.stderr)
            return EXIT_FAILED
        finally:
            shutdown_ray()
        summary = {"command": args.command, "workspace": str(workspace.root), **summary}
        if log is not None:
            summary["log"] = str(log.path)
        sys.stdout.flush()
        print_summary(summary, workspace, args.json, self.human_summary)
        return 0


def command_config(args: argparse.Namespace, workspace: Workspace) -> PipelineConfig | None:
    """The validated config of a parsed flow command."""
    return args.func.config(args, workspace)


def execute(args: argparse.Namespace, workspace: Workspace, cfg: PipelineConfig | None) -> Summary:
    """Run a parsed flow command's flow (no config validation, checks or teardown)."""
    return args.func.execute(args, workspace, cfg)


def _console(args: argparse.Namespace, workspace: Workspace) -> AbstractContextManager:
    """Progress on the console and the services' output in the run's log file (flows/prefect_edge/console.py),
    or with --verbose everything on the console."""
    if args.verbose:
        return nullcontext()
    from flows.prefect_edge.console import quiet_run

    return quiet_run(workspace.logs, args.command)
