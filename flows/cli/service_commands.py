"""`search-start` and `search-stop`: the search service on Ray Serve (flows/serve_edge/service.py)."""

from __future__ import annotations

import argparse

from flows.workspace import Workspace


def search_start(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.serve_edge.service import start

    return start(workspace, args.model, args.dataset, args.host, args.port, args.replicas, args.ray_address, args.json)


def search_stop(args: argparse.Namespace, workspace: Workspace) -> int:
    from flows.serve_edge.service import stop

    return stop(workspace, args.json)
