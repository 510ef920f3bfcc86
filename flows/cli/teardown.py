"""What a flow command stops before it prints its summary: Ray, and Prefect's queue of logs."""

from __future__ import annotations

import sys


def shutdown_ray() -> None:
    # Ray's log monitor prints worker output asynchronously; stop it so the JSON line stays last.
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def flush_prefect_logs() -> None:
    # Prefect's temporary server stops at interpreter exit, before Prefect's log worker drains
    # its queue; logs still queued then print "Error logging to API" after the summary. Send
    # them while the server is up.
    if "prefect" in sys.modules:
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()  # outside an event loop: sends the queued logs, waits up to 5 s
