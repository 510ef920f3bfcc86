"""`clpipe schedule`: the deployments, their schedules and next runs. From the Prefect API when a
server is configured (what is deployed there, active or paused, and the runs its scheduler has
created); otherwise from the table in flows/prefect_edge/deployments.py, with the times its schedules would
give."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from flows.prefect_edge.deployments import DeploymentSpec, deployment_table

NEXT_RUNS = 3
NOT_DEPLOYED = "not deployed on this server: run `prefect deploy --all` in the repository root, or `clpipe serve`"
FROM_TABLE = ("PREFECT_API_URL is not set: these are the schedules as defined (flows/prefect_edge/deployments.py, prefect.yaml) "
              "and the times they would give; nothing runs them until they are deployed to a Prefect server")


def _describe_schedule(entry: dict[str, Any]) -> dict[str, Any]:
    kind = "cron" if "cron" in entry else "interval"
    return {"kind": kind, kind: entry[kind], "timezone": entry.get("timezone"), "active": entry.get("active", True),
            "parameters": entry.get("parameters") or {}}


def _summary(spec: DeploymentSpec) -> dict[str, Any]:
    return {"name": spec.name, "deployment": spec.full_name, "entrypoint": spec.entrypoint,
            "parameters": spec.parameters, "concurrency_limit": spec.concurrency_limit,
            "triggers": [event for trigger in spec.triggers for event in trigger["expect"]],
            "schedules": [_describe_schedule(entry) for entry in spec.schedules]}


async def _times(entry: dict[str, Any], now: datetime) -> list[str]:
    from prefect.server.schemas.schedules import CronSchedule, IntervalSchedule

    if "cron" in entry:
        schedule = CronSchedule(cron=entry["cron"], timezone=entry["timezone"])
    else:
        schedule = IntervalSchedule(interval=timedelta(seconds=entry["interval"]), timezone=entry["timezone"],
                                    anchor_date=datetime.fromisoformat(entry["anchor_date"]))
    return [date.isoformat() for date in await schedule.get_dates(n=NEXT_RUNS, start=now)]


async def _from_table(specs: list[DeploymentSpec]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    listed = []
    for spec in specs:
        summary = _summary(spec)
        summary["next_runs"] = [{"time": time, "schedule_active": entry.get("active", True)}
                                for entry in spec.schedules for time in await _times(entry, now)]
        listed.append(summary)
    return listed


async def _from_api(specs: list[DeploymentSpec]) -> list[dict[str, Any]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.exceptions import ObjectNotFound

    listed = []
    async with get_client() as client:
        for spec in specs:
            summary = _summary(spec)
            try:
                deployment = await client.read_deployment_by_name(spec.full_name)
            except ObjectNotFound:
                listed.append(summary | {"deployed": False, "note": NOT_DEPLOYED, "next_runs": []})
                continue
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=NEXT_RUNS)
            summary.update({
                "deployed": True, "deployment_id": str(deployment.id), "paused": deployment.paused,
                "parameters": deployment.parameters,
                "schedules": [{"id": str(s.id), "schedule": s.schedule.model_dump(mode="json"), "active": s.active,
                               "parameters": s.parameters} for s in deployment.schedules],
                "next_runs": [{"time": run.expected_start_time.isoformat(), "flow_run_id": str(run.id),
                               "parameters": run.parameters} for run in runs],
            })
            listed.append(summary)
    return listed


def list_schedules(workspace: str, config_file: str | None, api_url: str | None) -> dict[str, Any]:
    specs = deployment_table(workspace, config_file)
    if api_url:
        return {"source": "api", "api_url": api_url, "deployments": asyncio.run(_from_api(specs))}
    return {"source": "table", "note": FROM_TABLE, "deployments": asyncio.run(_from_table(specs))}


def format_schedules(listed: dict[str, Any]) -> str:
    lines = [f"schedules ({'from ' + listed['api_url'] if listed['source'] == 'api' else listed['note']})"]
    for item in listed["deployments"]:
        lines.append(f"  {item['deployment']}")
        if item.get("deployed") is False:
            lines.append(f"    {item['note']}")
            continue
        for schedule in item["schedules"]:
            state = "active" if schedule["active"] else "inactive"
            rule = schedule.get("cron") or schedule.get("interval") or schedule.get("schedule")
            lines.append(f"    schedule {rule} ({state})")
        for event in item["triggers"]:
            lines.append(f"    on event {event}")
        if item["concurrency_limit"]:
            limit = item["concurrency_limit"]
            lines.append(f"    concurrency {limit['limit']}, {limit['collision_strategy']}")
        for run in item["next_runs"]:
            lines.append(f"    next run {run['time']}" + ("" if run.get("schedule_active", True) else " (if turned on)"))
    return "\n".join(lines)
