"""Where a pipeline keeps its state, and the process environment the services need.

`configure_environment` must run before prefect is imported: Prefect reads its settings
(home folder, telemetry) at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKSPACE = "workspace"


def _under_root(name: str, doc: str | None = None) -> property:
    """A read-only path: the workspace's root / `name`."""
    return property(lambda self: self.root / name, doc=doc or f"The workspace's {name}.")


@dataclass(frozen=True)
class Workspace:
    """One folder holding datasets, the MLflow store, checkpoints and embedding tables."""

    root: Path

    @classmethod
    def resolve(cls, path: str | os.PathLike | None = None) -> Workspace:
        chosen = path or os.environ.get("CLPIPE_WORKSPACE") or DEFAULT_WORKSPACE
        return cls(Path(chosen).expanduser().resolve())

    datasets = _under_root("datasets")
    checkpoints = _under_root("checkpoints")
    sweeps = _under_root("sweeps", "One folder per sweep run: its Tune experiment and its trials' checkpoints.")
    embeddings = _under_root("embeddings")
    logs = _under_root("logs", "One file per command run: Prefect's and Ray's output (flows/prefect_edge/console.py).")
    mlflow_db = _under_root("mlflow.db")
    mlflow_artifacts = _under_root("mlartifacts")
    prefect_home = _under_root(".prefect")

    @property
    def tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI when set, else a sqlite file inside the workspace."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlflow_db}"

    def create(self) -> Workspace:
        for folder in (self.root, self.datasets, self.checkpoints, self.embeddings, self.mlflow_artifacts):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def configure_environment(workspace: Workspace) -> None:
    """Point Prefect and MLflow at the workspace unless the user configured them already."""
    os.environ.setdefault("PREFECT_HOME", str(workspace.prefect_home))
    # Prefect's telemetry service causes "database is locked" tracebacks on the temporary server.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # The temporary server takes ~20 s to start on 2 cores; Prefect's default timeout is 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "true")
    os.environ.setdefault("MLFLOW_TRACKING_URI", workspace.tracking_uri)
    # MLflow's git / environment probing on every run is slow and noisy on a fresh machine.
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # Text encoders come from local folders or installed packages: never ask the Hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
