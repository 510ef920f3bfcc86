"""The schedules, written once: the table of deployments that `prefect.yaml` is generated from
(`python -m flows.prefect_edge.deployments > prefect.yaml`; a test checks the two agree) and that
`clpipe serve` turns into `flow.to_deployment(...)` for `prefect.serve`.

- train: the whole pipeline from a config file, on a UTC cron schedule shipped inactive;
- refresh: ingest the source again and bring the embedding table up to date, on an interval; one
  at a time, a run that finds another still running is cancelled (CANCEL_NEW), never stacked;
- reembed-on-promotion: no schedule; the `clpipe.model.promoted` event that evaluation emits
  starts it with the new champion's version, one at a time, queued (ENQUEUE);
- sweep: no schedule, run by hand (`prefect deployment run`, the UI): `clpipe sweep` with the
  config and a space file; one at a time, queued (a sweep fills the cluster).

Every flow parameter is a plain string (paths, names), so the same table serves the YAML, a
worker and `serve`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flows.prefect_edge.promotion_event import PROMOTED, RESOURCE_PREFIX

WORK_POOL = "clpipe"
DEFAULT_WORKSPACE = "workspace"  # relative to the folder the worker (or serve) runs in
DEFAULT_CONFIG = "configs/digits.yaml"
DEFAULT_SPACE = "configs/spaces/digits.yaml"
TRAIN_CRON = "0 3 * * *"  # daily at 03:00 UTC
REFRESH_SECONDS = 900
# Interval runs fall on ANCHOR + k * interval: fixed, so every deploy gives the same times.
REFRESH_ANCHOR = "2025-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment in the terms prefect.yaml uses (schedules, concurrency_limit and triggers
    are prefect.yaml's mappings)."""

    name: str
    flow_name: str  # the @flow's name (a test checks it), so listing imports no flow code
    entrypoint: str  # "flows/file.py:function", relative to the repository root
    description: str
    parameters: dict[str, Any]
    schedules: list[dict[str, Any]] = field(default_factory=list)
    concurrency_limit: dict[str, Any] | None = None
    triggers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        """"flow-name/deployment-name", what `run_deployment` and `prefect deployment run` take."""
        return f"{self.flow_name}/{self.name}"

    def load_flow(self) -> Any:
        path, function = self.entrypoint.split(":")
        return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), function)

    def yaml_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "description": self.description, "entrypoint": self.entrypoint,
                                 "parameters": self.parameters, "work_pool": {"name": WORK_POOL},
                                 "schedules": self.schedules}
        if self.concurrency_limit:
            entry["concurrency_limit"] = self.concurrency_limit
        if self.triggers:
            entry["triggers"] = self.triggers
        return entry


def deployment_table(workspace: str = DEFAULT_WORKSPACE, config_file: str | None = DEFAULT_CONFIG,
                     space_file: str = DEFAULT_SPACE) -> list[DeploymentSpec]:
    """`config_file` None: the built-in defaults (the same as configs/digits.yaml); `space_file`:
    what the sweep deployment samples."""
    def common() -> dict[str, str | None]:
        return {"workspace": workspace, "config_file": config_file}

    def spec(name: str, flow_name: str, entrypoint: str, description: str, extra: dict[str, str] | None = None,
             **options: Any) -> DeploymentSpec:
        """Every deployment runs its flow with this workspace and config file (and `extra`)."""
        return DeploymentSpec(name=name, flow_name=flow_name, entrypoint=entrypoint, description=description,
                              parameters={**common(), **(extra or {})}, **options)

    return [
        spec(
            "train", "clpipe-run-config", "flows/pipeline_flow.py:pipeline_from_config",
            "The whole pipeline (clpipe run --config FILE): ingest, train, evaluate, reembed.",
            schedules=[{"cron": TRAIN_CRON, "timezone": "UTC", "active": False, "parameters": common()}],
        ),
        spec(
            "refresh", "refresh", "flows/refresh_flow.py:refresh_flow",
            "Ingest the config's source again, then bring its embedding table up to date with the champion.",
            schedules=[{"interval": REFRESH_SECONDS, "anchor_date": REFRESH_ANCHOR, "timezone": "UTC", "active": True}],
            concurrency_limit={"limit": 1, "collision_strategy": "CANCEL_NEW"},
        ),
        spec(  # the config's export section: batch size, snapshots kept, engine
            "reembed-on-promotion", "reembed", "flows/reembed_flow.py:reembed_flow",
            "Backfill the promoted dataset's embedding table with the new champion.",
            concurrency_limit={"limit": 1, "collision_strategy": "ENQUEUE"},
            triggers=[{
                "type": "event",
                "enabled": True,
                "match": {"prefect.resource.id": f"{RESOURCE_PREFIX}*"},
                "expect": [PROMOTED],
                "posture": "Reactive",
                "threshold": 1,
                "parameters": {
                    "model_ref": "{{ event.payload.model_name }}/{{ event.payload.model_version }}",
                    "dataset_name": "{{ event.payload.dataset_name }}",
                },
            }],
        ),
        spec(
            "sweep", "sweep-from-files", "flows/sweep_flow.py:sweep_from_files",
            "A sweep (clpipe sweep --config FILE --space SPACE): trials on Ray Tune, stopped early by ASHA, the best "
            "one registered and gated.",
            extra={"space_file": space_file},
            concurrency_limit={"limit": 1, "collision_strategy": "ENQUEUE"},
        ),
    ]


def prefect_yaml_document() -> dict[str, Any]:
    """What prefect.yaml holds: the table with the default workspace and config. No pull step:
    `prefect deploy` records the folder it runs in (the repository root) as the working directory."""
    return {
        "name": "clpipe",
        "prefect-version": "3.9.1",
        "deployments": [spec.yaml_entry() for spec in deployment_table()],
    }


def runner_deployments(workspace: str, config_file: str | None, space_file: str = DEFAULT_SPACE) -> list[Any]:
    """The table as `RunnerDeployment`s for `prefect.serve`, with this workspace, config and space."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.events import DeploymentEventTrigger
    from prefect.schedules import Cron, Interval

    def schedule(entry: dict[str, Any]) -> Any:
        options = {"timezone": entry["timezone"], "active": entry["active"], "parameters": entry.get("parameters")}
        if "cron" in entry:
            return Cron(entry["cron"], **options)
        return Interval(entry["interval"], anchor_date=datetime.fromisoformat(entry["anchor_date"]), **options)

    deployments = []
    for spec in deployment_table(workspace, config_file, space_file):
        limit = ConcurrencyLimitConfig(**spec.concurrency_limit) if spec.concurrency_limit else None
        triggers = [DeploymentEventTrigger(**{k: v for k, v in trigger.items() if k != "type"}) for trigger in spec.triggers]
        deployments.append(spec.load_flow().to_deployment(
            name=spec.name, description=spec.description, parameters=spec.parameters,
            schedules=[schedule(entry) for entry in spec.schedules], concurrency_limit=limit, triggers=triggers))
    return deployments


if __name__ == "__main__":
    import yaml

    print("# Generated by `python -m flows.prefect_edge.deployments > prefect.yaml`; edit the table there.")
    print(yaml.safe_dump(prefect_yaml_document(), sort_keys=False, width=120), end="")
