"""The deployments table (flows/prefect_edge/deployments.py) against prefect.yaml, Prefect's own schema and the
flows it names; `clpipe schedule` without a server; `clpipe serve` refusing without one."""

from __future__ import annotations

import inspect
import typing
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from prefect.cli.deploy._models import PrefectYamlModel

from flows.prefect_edge.deployments import REFRESH_SECONDS, WORK_POOL, deployment_table, prefect_yaml_document
from flows.prefect_edge.promotion_event import PROMOTED
from flows.prefect_edge.schedule_listing import list_schedules
from tests.conftest import REPO, clpipe


def test_prefect_yaml_is_generated_from_the_table():
    assert yaml.safe_load((REPO / "prefect.yaml").read_text()) == prefect_yaml_document(), \
        "prefect.yaml is out of date: python -m flows.prefect_edge.deployments > prefect.yaml"


def test_prefect_yaml_passes_prefects_schema():
    model = PrefectYamlModel.model_validate(yaml.safe_load((REPO / "prefect.yaml").read_text()))
    by_name = {deployment.name: deployment for deployment in model.deployments}
    assert set(by_name) == {"train", "refresh", "reembed-on-promotion", "sweep"}
    assert all(deployment.work_pool.name == WORK_POOL for deployment in model.deployments)
    train, refresh, promoted = by_name["train"], by_name["refresh"], by_name["reembed-on-promotion"]
    sweep = by_name["sweep"]  # run by hand: no schedule, no trigger; one sweep at a time fills the cluster
    assert not sweep.schedules and not sweep.triggers
    assert sweep.parameters == {"workspace": "workspace", "config_file": "configs/digits.yaml",
                                "space_file": "configs/spaces/digits.yaml"}
    assert (sweep.concurrency_limit.limit, sweep.concurrency_limit.collision_strategy) == (1, "ENQUEUE")
    assert [(s.cron, s.timezone, s.active) for s in train.schedules] == [("0 3 * * *", "UTC", False)]
    assert set(train.schedules[0].parameters) == {"config_file", "workspace"}
    assert refresh.schedules[0].interval == timedelta(seconds=REFRESH_SECONDS)
    assert (refresh.concurrency_limit.limit, refresh.concurrency_limit.collision_strategy) == (1, "CANCEL_NEW")
    assert not promoted.schedules and promoted.triggers[0]["expect"] == [PROMOTED]
    assert (promoted.concurrency_limit.limit, promoted.concurrency_limit.collision_strategy) == (1, "ENQUEUE")


@pytest.mark.parametrize("spec", deployment_table(), ids=lambda spec: spec.name)
def test_each_entrypoint_is_a_flow_with_plain_string_parameters(spec):
    flow = spec.load_flow()
    assert flow.name == spec.flow_name
    hints = typing.get_type_hints(flow.fn)
    parameters = inspect.signature(flow.fn).parameters
    given = set(spec.parameters) | {key for trigger in spec.triggers for key in trigger["parameters"]}
    assert given <= set(parameters)
    required = {name for name, p in parameters.items() if p.default is inspect.Parameter.empty}
    assert required <= given, f"{spec.name}: parameters without a value: {required - given}"
    for name in given:
        assert hints[name] in (str, str | None), f"{spec.name}.{name} is {hints[name]}, not a plain string"


def test_schedule_without_a_server_lists_the_table_with_a_note(tmp_path):
    listed = list_schedules(str(tmp_path), None, api_url=None)
    assert listed["source"] == "table" and "PREFECT_API_URL" in listed["note"]
    by_name = {item["name"]: item for item in listed["deployments"]}
    assert by_name["refresh"]["deployment"] == "refresh/refresh"
    times = [datetime.fromisoformat(run["time"]) for run in by_name["refresh"]["next_runs"]]
    assert times[0] > datetime.now(UTC) - timedelta(seconds=1)
    assert all(int(time.timestamp()) % REFRESH_SECONDS == 0 for time in times)
    assert [time.hour for time in (datetime.fromisoformat(run["time"]) for run in by_name["train"]["next_runs"])] == [3] * 3
    assert by_name["reembed-on-promotion"]["triggers"] == [PROMOTED]
    assert by_name["train"]["parameters"] == {"workspace": str(tmp_path), "config_file": None}


def test_serve_refuses_without_a_prefect_server(tmp_path):
    result = clpipe("serve", workspace=tmp_path / "ws", timeout=120, env={"PREFECT_API_URL": None})
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()
    assert len(message) == 1 and "PREFECT_API_URL" in message[0] and "scheduler" in message[0]
