"""The walk of a config value from its edge to the Ray Train worker crosses no dict <-> pydantic round
trip: the CLI's validated `PipelineConfig` is the very object the flow, its tasks and the trainer
are given, and the worker's loop receives it as Ray ships it (pickled), never re-validated; a
deployment's JSON parameters become that `PipelineConfig` once, when Prefect validates them.

Both walks run in this process against the session's Prefect server, up to the worker loop's first
use of the config (`build_task`): Ray, the trainer and the training are stood in for, the flow,
its tasks, MLflow and the dataset are real. Without services, the pipeline's body hands each step
its section (`data.text`, `eval`, `views`, `export`) as the same object."""

from __future__ import annotations

import asyncio

import cloudpickle
import pytest

from cl_core.config import PipelineConfig
from cl_core.datasets import DatasetStore
from flows.cli import _command_config, _execute, build_parser
from flows.workspace import Workspace
from tests.conftest import CLI_SERVICES

FLAGS = ["--dataset", "digits", "--epochs", "1", "--batch-size", "16", "--workers", "1", "--lr", "0.01"]


class _WorkerReached(Exception):
    """Raised where the worker loop first uses its config: the walk is done."""


@pytest.fixture
def walk(tmp_path, monkeypatch):
    """`clpipe train`'s parsed flags and their validated config (the edge), a workspace with
    digits ingested, Prefect and MLflow pointed at real services, and the Ray edge stood in for:
    `fit` hands `train_loop_config` to a trainer that ships it to the worker loop pickled (as Ray
    does) and runs the loop until `build_task`. From here on, a `PipelineConfig.model_validate`
    fails the test."""
    import mlflow
    import ray.train
    import ray.train.torch
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.cli.teardown import flush_prefect_logs
    from flows.ray_edge import train_launch, train_worker

    workspace = Workspace.resolve(tmp_path / "ws").create()
    DatasetStore(workspace.datasets).ingest("digits", "digits", limit=64)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", workspace.tracking_uri)
    args = build_parser().parse_args(["train", *FLAGS])
    cfg = _command_config(args, workspace)  # the edge: flags (and a file), validated once
    seen: dict = {"validated": []}

    def no_revalidation(*args, **kwargs):
        seen["validated"].append(args)
        raise AssertionError("PipelineConfig.model_validate called after the edge")

    class Trainer:
        def __init__(self, loop, *, train_loop_config, **_options):
            self.loop, seen["trainer_config"] = loop, train_loop_config

        def fit(self):
            return self.loop(cloudpickle.loads(cloudpickle.dumps(seen["trainer_config"])))

    class Context:
        def get_world_rank(self) -> int:
            return 0

        def get_world_size(self) -> int:
            return 1

    def build_task(cfg, params, rank, world, device):
        seen["worker_config"] = cfg
        raise _WorkerReached

    monkeypatch.setattr(PipelineConfig, "model_validate", no_revalidation)
    monkeypatch.setattr(train_launch, "ensure_ray", lambda *args, **kwargs: None)
    monkeypatch.setattr(train_launch, "TorchTrainer", Trainer)
    monkeypatch.setattr(ray.train, "get_context", Context)
    monkeypatch.setattr(ray.train.torch, "get_device", lambda: "cpu")
    monkeypatch.setattr(train_worker, "build_task", build_task)
    with temporary_settings({PREFECT_API_URL: CLI_SERVICES.environment(keep=set())["PREFECT_API_URL"]}):
        yield workspace, seen, args, cfg
        flush_prefect_logs()  # the flow runs' last logs, while the server is still there
    mlflow.set_tracking_uri(None)


def _reached_the_worker(seen: dict, cfg: PipelineConfig) -> None:
    assert seen["trainer_config"]["config"] is cfg  # the driver hands Ray the object itself
    received = seen["worker_config"]
    assert type(received) is PipelineConfig and received == cfg and received is not cfg  # pickled, not rebuilt
    assert seen["validated"] == []


@pytest.mark.slow
@pytest.mark.integration
def test_the_clis_config_is_what_the_train_worker_receives(walk):
    workspace, seen, args, cfg = walk
    with pytest.raises(_WorkerReached):
        _execute(args, workspace, cfg)
    _reached_the_worker(seen, cfg)


@pytest.mark.slow
@pytest.mark.integration
def test_a_deployments_json_parameters_reach_the_flow_as_a_pipeline_config(walk, monkeypatch):
    """The deployment stores plain JSON; the run's flow receives a `PipelineConfig` (validated by
    Prefect against `train_flow`'s type hint, at that edge) and hands it on as it is. A config the
    schema refuses is refused when the run is created, before any flow code runs."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.flow_engine import load_flow_run, run_flow

    from flows.train_flow import train_flow

    workspace, seen, _, cfg = walk
    parameters = {"config": cfg.model_dump(mode="json"), "workspace": str(workspace.root)}
    deployment_id = train_flow.to_deployment(name="typed-config-walk").apply()
    run = run_deployment("train/typed-config-walk", parameters=parameters, timeout=0)
    flow_run = load_flow_run(run.id)
    assert flow_run.deployment_id == deployment_id and flow_run.parameters["config"] == parameters["config"]

    seen["edge"] = []
    original = train_flow.validate_parameters

    def validated_at_the_edge(given):
        validated = original(given)
        seen["edge"].append(validated["config"])
        return validated

    monkeypatch.setattr(train_flow, "validate_parameters", validated_at_the_edge)
    with pytest.raises(_WorkerReached):
        run_flow(train_flow, flow_run=flow_run)
    [edge] = seen["edge"]
    assert type(edge) is PipelineConfig and edge == cfg
    _reached_the_worker(seen, edge)

    bad = {**parameters, "config": {**parameters["config"], "train": {**parameters["config"]["train"], "epochs": 0}}}
    with pytest.raises(PrefectHTTPStatusError, match="epochs"):
        asyncio.run(_create_run(deployment_id, bad))


async def _create_run(deployment_id, parameters):
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.create_flow_run_from_deployment(deployment_id, parameters=parameters)


def test_the_pipeline_hands_each_step_its_section_as_it_is(monkeypatch):
    """`pipeline_flow`'s body, without Prefect: ingest gets `data.text`, train the config pinned to
    the ingested version (the other sections shared, not copied), evaluate `eval`, `views` and `registry`,
    reembed `export`, each the object itself; nothing is validated again on the way."""
    from cl_core.config import EvalConfig, ExportConfig, RegistryConfig, TextSourceSpec, ViewsConfig, load_config
    from flows import pipeline_flow as module

    cfg = load_config(None, {"data.modality": "text", "data.source": "pairs.tsv", "data.name": "pairs"})
    for section in (PipelineConfig, EvalConfig, ExportConfig, RegistryConfig, TextSourceSpec, ViewsConfig):
        monkeypatch.setattr(section, "model_validate", lambda *a, **k: pytest.fail("validated again"))
    given = {}

    def step(name, result):
        return lambda *args, **kwargs: given.update({name: (args, kwargs)}) or result

    monkeypatch.setattr(module, "ingest_flow", step("ingest", {"version": "v7"}))
    monkeypatch.setattr(module, "train_flow", step("train", {"model_name": "pairs-text", "model_version": "1"}))
    monkeypatch.setattr(module, "evaluate_flow", step("evaluate", {}))
    monkeypatch.setattr(module, "reembed_flow", step("reembed", {}))
    module.pipeline_flow.fn(cfg, "ws", "10.0.0.1:6379")

    assert given["ingest"][1]["source_spec"] is cfg.data.text
    [pinned, *_] = given["train"][0]
    assert type(pinned) is PipelineConfig and pinned.data.version == "v7"
    assert pinned.model_copy(update={"data": cfg.data}) == cfg and pinned.train is cfg.train and pinned.loss is cfg.loss
    assert given["evaluate"][0][-3:] == (cfg.eval, cfg.views, cfg.registry)
    assert all(passed is section for passed, section in zip(given["evaluate"][0][-3:], (cfg.eval, cfg.views, cfg.registry),
                                                          strict=True))
    assert given["reembed"][0][3] is cfg.export and given["reembed"][0][4] == "10.0.0.1:6379"
