"""Connect to the Ray cluster the user named, or start a local one sized for training."""

from __future__ import annotations

import os
import socket

import ray


class RayConnectionError(RuntimeError):
    pass


def _reachable(address: str, timeout_s: float = 3.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def ensure_ray(address: str | None = None, logical_cpus: int | None = None) -> str:
    """Initialise Ray once per process and return the address it runs at.

    `address` (or RAY_ADDRESS) joins an existing cluster; it is checked first because
    `ray.init` waits indefinitely when nothing listens there. Without one, a local Ray starts
    with `logical_cpus` CPUs: on a 2-core machine the Train controller plus two 1-CPU workers
    would otherwise leave nothing for other tasks and deadlock.
    """
    if ray.is_initialized():
        return ray.get_runtime_context().gcs_address
    address = address or os.environ.get("RAY_ADDRESS")
    if address == "auto":  # inside a Ray job or on a cluster node: Ray finds the running cluster
        ray.init(address="auto", log_to_driver=False)
    elif address:
        target = address.removeprefix("ray://")
        if not _reachable(target):
            raise RayConnectionError(f"no Ray cluster answers at {address}; start one (infra/) or drop --ray-address")
        ray.init(address=address, log_to_driver=False)
    else:
        cpus = max(logical_cpus or 0, os.cpu_count() or 1)
        # The dashboard stays on: Train V2 polls its state API and warns repeatedly without it.
        ray.init(num_cpus=cpus, dashboard_host="127.0.0.1", log_to_driver=True,
                 # Train V2 routes print() through its logger, which Ray forwards a second time.
                 runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore::DeprecationWarning",
                                           "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}})
    return ray.get_runtime_context().gcs_address
