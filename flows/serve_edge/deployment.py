"""The search service on Ray Serve: each replica runs `SearchApi` and follows the table's CURRENT.

A replica checks CURRENT every `poll_s` seconds in a thread of its own; a switch opens the new
snapshot (index, and for text and image tables the model version that made it) before it
replaces the served one, so the queries in flight finish on the old snapshot and none fails
(`cl_core.search.follow`). Replicas are independent: during a switch one may answer from the new
snapshot a moment before another. Serve restarts a replica that dies or fails `check_health`.
"""

from __future__ import annotations

import threading

from ray import serve
from starlette.requests import Request

from flows.serve_edge.search_api import SearchApi

APP_NAME = "clpipe-search"
POLL_S = 1.0  # how often a replica looks at CURRENT: the freshness lag is this plus the switch


@serve.deployment(name="search", ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=32,
                  health_check_period_s=5, health_check_timeout_s=30, graceful_shutdown_timeout_s=10)
class SearchDeployment:
    def __init__(self, embeddings_root: str, datasets_root: str, model_name: str, dataset_name: str, tracking_uri: str,
                 token: str | None, poll_s: float = POLL_S) -> None:
        self.api = SearchApi(embeddings_root, datasets_root, model_name, dataset_name, tracking_uri, token)
        self.api.refresh()
        self._stop = threading.Event()
        self._poll_s = poll_s
        self._thread = threading.Thread(target=self._follow, name="follow-current", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.wait(self._poll_s):
            self.api.refresh()

    async def __call__(self, request: Request):
        return await self.api.handle(request)

    def check_health(self) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("the thread that follows CURRENT has stopped")

    def __del__(self) -> None:
        self._stop.set()
