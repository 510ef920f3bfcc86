"""The deployments against a real Prefect server on PostgreSQL with `clpipe serve` running them: the
scheduler creates runs at the expected times with the expected parameters, `refresh` catches the
table up with new files, a promotion event starts `reembed-on-promotion`, and a second `refresh`
started while one runs is cancelled. One server, one workspace, tiny data and model."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings
from sklearn.datasets import load_digits

from cl_core.embeddings import EmbeddingTable
from flows.prefect_edge.deployments import REFRESH_SECONDS, deployment_table
from tests.conftest import REPO, clpipe, last_json
from tests.services import postgres_database, prefect_server, stop

pytestmark = [pytest.mark.slow, pytest.mark.integration]

N, K = 200, 4
MODEL, DATASET = "imgs-ntxent", "imgs"
TINY = """
data: {source: %s, name: imgs, image_size: 8}
model: {depths: [1], widths: [%d], proj_hidden: 32, proj_dim: 16}
views: {flip_p: 0.0, gray_p: 0.0}
train: {epochs: 1, batch_size: 16, workers: 1}
eval: {probe_max_iter: 50, knn_k: 5}
"""
DEPLOYMENTS = {spec.name: spec.full_name for spec in deployment_table()}
FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}


def _write_images(source, digits, indices) -> None:
    for i in indices:
        path = source / str(digits.target[i]) / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray((digits.images[i] * 15).astype(np.uint8)).save(buffer, format="PNG")
        path.write_bytes(buffer.getvalue())


def _api(url, make_coroutine):
    """Run `make_coroutine(client)` against the test's server."""
    async def call():
        async with get_client() as client:
            return await make_coroutine(client)

    with temporary_settings({PREFECT_API_URL: url}):
        return asyncio.run(call())


def _runs(url, deployment: str, states: set[StateType] | None = None) -> list:
    async def read(client):
        found = await client.read_deployment_by_name(DEPLOYMENTS[deployment])
        runs = await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])))
        return [run for run in runs if states is None or run.state_type in states]

    return _api(url, read)


def _wait(condition, timeout: float, what: str, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _current(workspace):
    return EmbeddingTable(workspace / "embeddings", MODEL, DATASET).current().manifest


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("schedules")
    digits = load_digits()
    source, workspace, config = root / "images", root / "workspace", root / "tiny.yaml"
    _write_images(source, digits, range(N))
    config.write_text(TINY % (source, 16))
    # The first champion embeds into 2 dimensions: a model trained later with 16 beats it on kNN.
    weak = root / "weak.yaml"
    weak.write_text(TINY % (source, 2))
    # The server keeps its state in PostgreSQL, as a production stack does (infra/local_stack.sh --db postgres).
    with postgres_database("clpipe_test_prefect") as database, \
            prefect_server(root / "prefect-server", scheduler_loop_seconds=5, database=database) as url:
        env = {"PREFECT_API_URL": url}
        started = time.monotonic()
        first = last_json(clpipe("run", "--config", str(weak), "--json", workspace=workspace, env=env))
        print(f"\nfirst clpipe run: {time.monotonic() - started:.0f}s")
        serve_env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
        serve_env.update(env, PREFECT_RUNNER_POLL_FREQUENCY="2")
        serve_log = open(root / "serve.log", "w")
        serve = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--workspace", str(workspace),
                                  "--config", str(config)], cwd=REPO, env=serve_env, stdout=serve_log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            def deployed():
                async def read(client):
                    return [await client.read_deployment_by_name(name) for name in DEPLOYMENTS.values()]
                try:
                    return _api(url, read)
                except Exception:  # noqa: BLE001 - not registered yet
                    assert serve.poll() is None, (root / "serve.log").read_text()[-3000:]
                    return None

            _wait(deployed, 180, "clpipe serve to register the deployments", every=2)
            # The promotion test's challenger (16 wide, 3 epochs, on the first dataset version) trains beside the
            # tests before it: it registers a challenger only (the champion they refresh with stays) and is no run
            # of a deployment. Mostly one busy core; the evaluation that promotes it waits for that test.
            with ThreadPoolExecutor(1) as pool:
                challenger = pool.submit(clpipe, "train", "--dataset", DATASET, "--config", str(config), "--epochs",
                                         "3", "--json", workspace=workspace, env=env)
                yield {"url": url, "env": env, "root": root, "source": source, "digits": digits,
                       "workspace": workspace, "config": config, "first": first, "challenger": challenger}
        finally:
            # SIGTERM, as a process manager stops it: Prefect's runner handles it (pauses the schedules,
            # exits in seconds). SIGINT is ignored by a process started in the background, as a CI job
            # is, and cost a 60 s wait and a SIGKILL here.
            stop(serve, signal.SIGTERM, timeout=60)
            serve_log.close()


def test_deploying_creates_scheduled_runs_with_expected_times_and_parameters(stack):
    url, parameters = stack["url"], {"workspace": str(stack["workspace"]), "config_file": str(stack["config"])}
    refresh = _wait(lambda: _runs(url, "refresh", {StateType.SCHEDULED}), 60, "scheduled refresh runs")
    now = datetime.now(UTC).timestamp()
    for run in refresh:
        assert run.parameters == parameters and run.auto_scheduled
        start = run.expected_start_time.timestamp()
        assert start % REFRESH_SECONDS == 0 and start > now - REFRESH_SECONDS
    assert not _runs(url, "train")  # shipped inactive: deploying starts nothing

    async def turn_on_training(client):
        deployment = await client.read_deployment_by_name(DEPLOYMENTS["train"])
        for schedule in deployment.schedules:
            await client.update_deployment_schedule(deployment.id, schedule.id, active=True)

    _api(url, turn_on_training)
    train = _wait(lambda: _runs(url, "train", {StateType.SCHEDULED}), 60, "scheduled train runs")
    for run in train:
        start = run.expected_start_time.astimezone(UTC)
        assert (start.hour, start.minute, start.second) == (3, 0, 0) and run.parameters == parameters

    listed = last_json(clpipe("schedule", "--json", workspace=stack["workspace"], env=stack["env"], timeout=300))
    by_name = {item["name"]: item for item in listed["deployments"]}
    assert listed["source"] == "api" and all(item["deployed"] for item in by_name.values())
    assert {run["flow_run_id"] for run in by_name["refresh"]["next_runs"]} <= {str(run.id) for run in refresh}
    assert by_name["train"]["next_runs"] and by_name["reembed-on-promotion"]["triggers"] == ["clpipe.model.promoted"]

    async def turn_schedules_off(client):  # so no scheduled run fires while the next tests run
        for name in ("train", "refresh"):
            deployment = await client.read_deployment_by_name(DEPLOYMENTS[name])
            for schedule in deployment.schedules:
                await client.update_deployment_schedule(deployment.id, schedule.id, active=False)

    _api(url, turn_schedules_off)
    for name in ("train", "refresh"):
        for run in _runs(url, name, {StateType.SCHEDULED}):
            _api(url, lambda client, run_id=run.id: client.delete_flow_run(run_id))
    assert not _runs(url, "refresh", {StateType.SCHEDULED})


def test_run_deployment_of_refresh_catches_up_with_new_files(stack):
    workspace = stack["workspace"]
    before = _current(workspace)
    _write_images(stack["source"], stack["digits"], range(N, N + K))
    started = time.monotonic()
    with temporary_settings({PREFECT_API_URL: stack["url"]}):
        run = run_deployment(DEPLOYMENTS["refresh"], timeout=600, poll_interval=2)
    print(f"\nrefresh deployment run: {time.monotonic() - started:.0f}s")
    assert run.state_type == StateType.COMPLETED, run.state
    after = _current(workspace)
    assert after.action == "incremental" and after.parent == before.snapshot
    assert (after.rows, after.rows_embedded, after.rows_reused, after.rows_deleted) == (N + K, K, N, 0)
    assert after.model_version == before.model_version and after.dataset_version != before.dataset_version
    assert after.prefect_flow_run_id  # the reembed subflow of this deployment run


def test_promoting_a_better_model_backfills_through_reembed_on_promotion(stack):
    workspace, config, env = stack["workspace"], stack["config"], stack["env"]
    before = _current(workspace)
    trained = last_json(stack["challenger"].result())  # `clpipe train --epochs 3`, started by the fixture
    evaluated = last_json(clpipe("evaluate", "--model", f"{MODEL}/{trained['model_version']}", "--dataset", DATASET,
                                 "--config", str(config), "--json", workspace=workspace, env=env))
    assert evaluated["promotion"]["promoted"], evaluated["promotion"]["reason"]
    started = time.monotonic()
    runs = _wait(lambda: _runs(stack["url"], "reembed-on-promotion", FINAL), 300, "a reembed-on-promotion run", every=2)
    print(f"\nevent -> reembed-on-promotion finished: {time.monotonic() - started:.0f}s after evaluate returned")
    assert [run.state_type for run in runs] == [StateType.COMPLETED], [run.state for run in runs]
    assert runs[0].parameters["model_ref"] == f"{MODEL}/{trained['model_version']}"
    assert runs[0].parameters["dataset_name"] == DATASET
    current = _current(workspace)
    assert current.model_version == trained["model_version"] and current.action == "backfill"
    assert current.rows == current.rows_embedded == N + K
    # Other weights (16-d, where the champion before embedded into 2): no vector could be the parent's.
    assert current.parent == before.snapshot and (before.dimension, current.dimension) == (2, 16)


def test_a_refresh_started_while_another_runs_is_cancelled(stack):
    url = stack["url"]
    with temporary_settings({PREFECT_API_URL: url}):
        first = run_deployment(DEPLOYMENTS["refresh"], timeout=0)

        def holds_the_slot():
            state = _api(url, lambda client: client.read_flow_run(first.id)).state_type
            assert state not in FINAL, f"the first refresh ended ({state}) before the second could start"
            return state in (StateType.PENDING, StateType.RUNNING)

        _wait(holds_the_slot, 120, "the first refresh to start", every=0.5)
        second = run_deployment(DEPLOYMENTS["refresh"], timeout=0)

    def final(run_id):
        run = _api(url, lambda client: client.read_flow_run(run_id))
        return run if run.state_type in FINAL else None

    assert _wait(lambda: final(second.id), 120, "the second refresh to end").state_type == StateType.CANCELLED
    assert _wait(lambda: final(first.id), 300, "the first refresh to end").state_type == StateType.COMPLETED
