"""The commands that only read the workspace's stores: `table`, `recommend`, `search` and `compare`. No
Prefect, Ray or MLflow server starts for them."""

from __future__ import annotations

import argparse
import json
import sys

from flows.cli.flow_command import EXIT_FAILED
from flows.workspace import Workspace


def show_table(args: argparse.Namespace, workspace: Workspace) -> int:
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


def _print_or_fail(command: str, workspace: Workspace, produce, formatted, as_json: bool) -> int:
    """Print what `produce()` returns, formatted or as one JSON line; exit 1 with one line on a
    lookup, value or table error."""
    from cl_core.embeddings import EmbeddingTableError

    try:
        result = produce()
    except (LookupError, ValueError, EmbeddingTableError) as error:
        message = str(error).replace("\n", " ") or type(error).__name__
        print(f"clpipe {command} failed: {message}", file=sys.stderr)
        return EXIT_FAILED
    if as_json:
        print(json.dumps({"command": command, "workspace": str(workspace.root), **result}), flush=True)
    else:
        print(formatted(result), flush=True)
    return 0


def recommend(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.recommend import format_recommendations
    from flows.recommend import recommend as recommended

    return _print_or_fail("recommend", workspace, lambda: recommended(workspace, args.model, args.user, args.k),
                          format_recommendations, args.json)


def search(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.search import QUERY_KINDS, format_hits
    from flows.search import search as searched

    kind = next(k for k in QUERY_KINDS if getattr(args, k) is not None)
    return _print_or_fail("search", workspace,
                          lambda: searched(workspace, args.model, args.dataset, kind, getattr(args, kind), args.k),
                          format_hits, args.json)


def compare(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.mlflow_edge.compare import compare_command

    return compare_command(workspace.tracking_uri, args.experiment, args.metric, args.json, args.sweep)
