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


def recommend(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.recommend import recommend_command

    return recommend_command(workspace, args.model, args.user, args.k, args.json)


def search(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.search import QUERY_KINDS, search_command

    kind = next(k for k in QUERY_KINDS if getattr(args, k) is not None)
    return search_command(workspace, args.model, args.dataset, kind, getattr(args, kind), args.k, args.json)


def compare(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.mlflow_edge.compare import compare_command

    return compare_command(workspace.tracking_uri, args.experiment, args.metric, args.json)
