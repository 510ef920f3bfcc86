"""`clpipe`: the command line over the Prefect flows.

Configuration is parsed and validated here, before Prefect, Ray or MLflow are imported, so a bad
flag or config file fails in a fraction of a second with the offending field named.

- parser.py: the flags and help of every command; each subparser names its handler
  (`set_defaults(func=...)`).
- overrides.py: flags on top of the --config file, validated into a `PipelineConfig`.
- flow_command.py: the path of the commands that run a flow (config, preflight check, flow, teardown,
  summary) and the exit codes.
- pipeline_commands.py (ingest, train, evaluate, refresh, run), embedding_commands.py (export,
  reembed), reading_commands.py (table, recommend, compare), schedule_commands.py (serve, schedule):
  the handlers.
- summary.py: what a flow command prints when done; teardown.py: stopping Ray, sending Prefect's logs.
"""

from __future__ import annotations

from flows.cli.flow_command import command_config as _command_config
from flows.cli.flow_command import execute as _execute
from flows.cli.overrides import config_from_flags as _config
from flows.cli.parser import build_parser
from flows.cli.summary import metric_lines as _metric_lines
from flows.cli.summary import print_run_summary as _print_run_summary
from flows.workspace import Workspace

# The underscored names are what tests imported from the single-module CLI.
__all__ = ["_command_config", "_config", "_execute", "_metric_lines", "_print_run_summary", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args, Workspace.resolve(args.workspace))
