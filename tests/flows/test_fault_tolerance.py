"""Faults for real: a training worker killed mid-run is replaced and training resumes from the
last checkpoint; a driver killed mid-run is continued with `clpipe train --resume RUN_ID`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from cl_core.datasets import DatasetStore
from tests.conftest import CLI_SERVICES, REPO, clpipe, clpipe_environment, last_json

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CONFIG = """
data: {name: digits}
model: {depths: [1], widths: [16], proj_hidden: 32, proj_dim: 16}
train: {epochs: 3, batch_size: 64, workers: 2, max_failures: 1}
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    DatasetStore(root / "ws" / "datasets").ingest("digits", "digits", limit=400)
    (root / "small.yaml").write_text(CONFIG)
    # The killed-worker run embeds each worker's 64 view images per step 16 at a time
    # (train.grad_cache_chunk): its resume is exact with chunks too, through the same checkpoint.
    (root / "small-chunked.yaml").write_text(CONFIG.replace("max_failures: 1}", "max_failures: 1, grad_cache_chunk: 16}"))
    mlflow.set_tracking_uri(f"sqlite:///{root / 'ws' / 'mlflow.db'}")
    yield root
    mlflow.set_tracking_uri(None)


def _steps(run_id: str) -> list[int]:
    return sorted(m.step for m in MlflowClient().get_metric_history(run_id, "loss"))


def _started(*args: str, workspace: Path) -> subprocess.Popen:
    """`clpipe(*args)` started in the background."""
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args, "--workspace", str(workspace)], cwd=REPO,
                            env=clpipe_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=900)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_killed_worker_is_replaced_and_training_resumes_from_the_checkpoint(workspace):
    # Both runs train in GradCache chunks (small-chunked.yaml): one test shows the resume exact and the chunked step
    # deterministic across it (the whole-batch step shares the checkpoint, RNG and data-order code).
    ws, config = workspace / "ws", str(workspace / "small-chunked.yaml")
    # The uninterrupted reference trains at the same time (most of a run is one core busy), in a workspace of its own
    # (its own MLflow store) with a copy of the same dataset version.
    clean_ws = workspace / "clean-ws"
    shutil.copytree(ws / "datasets", clean_ws / "datasets")
    reference = _started("train", "--dataset", "digits", "--config", config, "--model-name", "clean", "--json",
                         workspace=clean_ws)
    faulty = clpipe("train", "--dataset", "digits", "--config", config, "--model-name", "faulty", "--json",
                    workspace=ws, env={"CLPIPE_FAULT_INJECTION": "1:1"})
    summary = last_json(faulty)
    assert "fault injection: killing worker rank 1 (pid" in Path(summary["log"]).read_text()
    assert summary["train_metrics"]["epoch"] == 2
    assert _steps(summary["run_id"]) == [0, 1, 2]  # every epoch logged exactly once, one run
    (version,) = MlflowClient().search_model_versions("name = 'faulty'")
    assert str(version.version) == "1" and version.run_id == summary["run_id"]
    # The registered model is the final checkpoint, which must equal the clean run's (below).
    params = MlflowClient().get_run(summary["run_id"]).data.params
    assert params["checkpoint_dir"] == summary["checkpoint_dir"]
    assert params["train.grad_cache_chunk"] == "16"

    clean = last_json(_finished(reference))
    assert clean["train_metrics"]["epoch"] == 2
    # The resume is exact: model, optimizer, schedule, data order and every rank's RNG continue
    # where the checkpoint left them, so the interrupted run ends with the clean run's weights.
    faulty_state, clean_state = (
        torch.load(Path(run["checkpoint_dir"]) / "state.pt", weights_only=True) for run in (summary, clean)
    )
    assert faulty_state["step"] == clean_state["step"]
    for key, value in clean_state["model"].items():
        assert torch.equal(faulty_state["model"][key], value), key


def test_resume_continues_a_run_whose_driver_died(workspace):
    ws, config = workspace / "ws", str(workspace / "small.yaml")
    environment = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS")}
    environment.update(CLI_SERVICES.environment(keep=set()))  # the session's Prefect server, as clpipe() uses
    driver = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "train", "--dataset", "digits", "--config", config, "--epochs", "6",
         "--model-name", "resumed", "--workspace", str(ws)],
        cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    client, run_id, deadline = MlflowClient(), None, time.time() + 600
    try:
        while time.time() < deadline and driver.poll() is None:
            experiment = client.get_experiment_by_name("resumed")
            runs = client.search_runs([experiment.experiment_id]) if experiment else []
            if runs and _steps(runs[0].info.run_id):
                run_id = runs[0].info.run_id
                break
            time.sleep(0.5)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        driver.wait()
    assert run_id, "training never logged its first epoch"
    before = _steps(run_id)
    assert before and before[-1] < 5

    resumed = last_json(clpipe("train", "--resume", run_id, "--json", workspace=ws))
    assert resumed["run_id"] == run_id
    assert _steps(run_id) == [0, 1, 2, 3, 4, 5]
    assert client.get_run(run_id).info.status == "FINISHED"
    assert [str(v.version) for v in client.search_model_versions("name = 'resumed'")] == ["1"]
