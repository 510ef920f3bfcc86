"""`clpipe sweep` for real: Ray Tune trials of Ray Train runs on digits, ASHA stopping weak ones,
every trial nested under the sweep's MLflow run, a worker killed and its trial continued from its
checkpoint, the sweep's driver killed and the sweep resumed without training finished trials
again, the best trial registered and gated. A bad space file exits 2 before anything starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import mlflow
import pytest
from mlflow import MlflowClient

from cl_core.datasets import DatasetStore
from flows.run_description import PARENT_TAG, STAGE_TAG, STOPPED_EARLY_TAG, SWEEP_TAG, TRIAL_TAG
from tests.browser_pages import page_text_with, shows
from tests.conftest import REPO, clpipe, clpipe_environment, last_json
from tests.services import mlflow_ui

CONFIG = """
data: {name: digits}
model: {depths: [1], widths: [16], proj_hidden: 32, proj_dim: 16}
train: {epochs: 4, batch_size: 64, workers: 1}
registry: {model_name: swept}
"""
# Trials run one at a time, so the order ASHA sees them in is the sampler's (seeded): lr 1e-7
# barely trains, and the trials drawn with it after a good one are stopped at the first rung.
SPACE = """
epochs: 4
trials: 4
max_concurrent: 1
seed: 0
scheduler: {name: asha, grace_epochs: 1, reduction_factor: 2}
params:
  train.lr: {choice: [0.01, 0.0000001]}
  loss.temperature: {uniform: [0.1, 0.5]}
"""
METRIC = "eval.val.knn_top1"  # the stable column
EPOCH_METRIC = "val.knn_top1"  # its history, one value per epoch


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    (root / "small.yaml").write_text(CONFIG)
    (root / "space.yaml").write_text(SPACE)
    mlflow.set_tracking_uri(f"sqlite:///{root / 'ws' / 'mlflow.db'}")
    yield root
    mlflow.set_tracking_uri(None)


def _trial_runs(client: MlflowClient, sweep_run_id: str) -> list:
    experiment = client.get_experiment_by_name("swept")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], f"tags.`{SWEEP_TAG}` = '{sweep_run_id}'")


def _epochs(client: MlflowClient, run_id: str) -> list:
    return sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)


@pytest.fixture(scope="module")
def interrupted_and_resumed(folder):
    """A sweep whose first trial loses its worker in epoch 1, whose driver is SIGKILLed while the
    second trial trains, then `clpipe sweep --resume`."""
    ws = folder / "ws"
    DatasetStore(ws / "datasets").ingest("digits", "digits", limit=400)
    driver = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "sweep", "--config", str(folder / "small.yaml"), "--space",
         str(folder / "space.yaml"), "--limit", "400", "--workspace", str(ws)],
        cwd=REPO, env=clpipe_environment({"CLPIPE_FAULT_INJECTION": "0:1"}), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    client, sweep_run, deadline = MlflowClient(), None, time.time() + 600
    try:
        while time.time() < deadline and driver.poll() is None:
            experiment = client.get_experiment_by_name("swept")
            sweeps = client.search_runs([experiment.experiment_id], f"tags.`{STAGE_TAG}` = 'sweep'") if experiment else []
            trials = _trial_runs(client, sweeps[0].info.run_id) if sweeps else []
            if len(trials) >= 2 and all(_epochs(client, run.info.run_id) for run in trials):
                sweep_run = sweeps[0].info.run_id
                break
            time.sleep(0.5)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver, its local Ray and the trials in it
        driver.wait()
        killed_at = time.time() * 1000
    assert sweep_run, f"the sweep never reached its second trial (exit {driver.returncode})"
    before = {run.data.tags[TRIAL_TAG]: _epochs(client, run.info.run_id) for run in _trial_runs(client, sweep_run)}
    first_log = "\n".join(path.read_text(errors="replace") for path in (ws / "logs").glob("*.log"))
    resumed = last_json(clpipe("sweep", "--resume", sweep_run, "--json", workspace=ws))
    return {"ws": ws, "sweep_run": sweep_run, "before": before, "killed_at": killed_at, "first_log": first_log,
            "summary": resumed}


@pytest.mark.slow
@pytest.mark.integration
def test_a_resumed_sweep_keeps_its_finished_trials_and_ends_with_all_of_them(interrupted_and_resumed):
    result, client = interrupted_and_resumed, MlflowClient()
    summary, sweep_run = result["summary"], result["sweep_run"]
    assert summary["sweep_run_id"] == sweep_run
    assert len(summary["trials"]) == 4 and summary["sweep.trials_failed"] == 0
    runs = {run.data.tags[TRIAL_TAG]: run for run in _trial_runs(client, sweep_run)}
    assert sorted(runs) == sorted(trial["trial_id"] for trial in summary["trials"])  # one MLflow run per trial
    # The first trial finished before the driver died: nothing of it was trained again.
    (first,) = [trial for trial, epochs in result["before"].items() if len(epochs) == 4]
    after = _epochs(client, runs[first].info.run_id)
    assert [m.step for m in after] == [0, 1, 2, 3]
    assert all(m.timestamp < result["killed_at"] for m in after)
    # The trial that was training when the driver died continued: each epoch logged once. A trial
    # ASHA stopped may have trained on for an epoch or two (of a fraction of a second here) before
    # the stop reached it.
    for trial in summary["trials"]:
        steps = [m.step for m in _epochs(client, trial["run_id"])]
        assert steps == list(range(trial["epochs_trained"])), trial
        assert trial["epochs"] <= trial["epochs_trained"], trial


@pytest.mark.slow
@pytest.mark.integration
def test_a_killed_worker_is_replaced_and_its_trial_continues(interrupted_and_resumed):
    result = interrupted_and_resumed
    assert "fault injection: killing worker rank 0 (pid" in result["first_log"]
    first = next(trial for trial, epochs in result["before"].items() if len(epochs) == 4)
    (row,) = [trial for trial in result["summary"]["trials"] if trial["trial_id"] == first]
    assert row["epochs"] == 4 and row["error"] is None and not row["stopped_early"]


@pytest.mark.slow
@pytest.mark.integration
def test_asha_stops_weak_trials_and_every_trial_is_nested_under_the_sweep(interrupted_and_resumed):
    result, client = interrupted_and_resumed, MlflowClient()
    summary, sweep_run = result["summary"], result["sweep_run"]
    stopped = [trial for trial in summary["trials"] if trial["stopped_early"]]
    assert stopped and all(trial["epochs"] < 4 for trial in stopped)
    assert summary["sweep.epochs_trained"] == sum(trial["epochs_trained"] for trial in summary["trials"]) < 16
    for trial in summary["trials"]:
        run = client.get_run(trial["run_id"])
        assert run.data.tags[PARENT_TAG] == sweep_run and run.data.tags[STAGE_TAG] == "train"
        assert run.data.tags[STOPPED_EARLY_TAG] == str(trial["stopped_early"]).lower()
        assert run.info.status == "FINISHED"
        # The same columns as a single run: the config's params, the val metric with its interval, train.*.
        assert float(run.data.params["train.lr"]) == pytest.approx(trial["train.lr"])
        # Its val metric after every epoch, and in the stable column the value the sweep judged it by
        # (its last report: a stopped trial may have trained one epoch more), with the interval.
        history = sorted(client.get_metric_history(trial["run_id"], EPOCH_METRIC), key=lambda m: m.step)
        assert [m.step for m in history] == list(range(trial["epochs_trained"]))
        assert history[trial["epochs"] - 1].value == run.data.metrics[METRIC] == trial[METRIC]
        assert run.data.metrics[f"{METRIC}.ci_low"] <= trial[METRIC] <= run.data.metrics[f"{METRIC}.ci_high"]
        assert run.data.metrics["train.seconds"] > 0
    parent = client.get_run(sweep_run)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["sweep.scheduler"] == "asha" and parent.data.params["space.train.lr"] == "choice(0.01, 1e-07)"
    assert parent.data.metrics["sweep.trials_stopped_early"] == len(stopped)
    artifacts = {item.path for item in client.list_artifacts(sweep_run, "sweep")}
    assert {"sweep/parallel_coordinates.png", "sweep/trials.json", "sweep/space.json"} <= artifacts


@pytest.mark.slow
@pytest.mark.integration
def test_the_best_trial_is_registered_and_gated_on_val(interrupted_and_resumed):
    result, client = interrupted_and_resumed, MlflowClient()
    summary = result["summary"]
    best = max((trial for trial in summary["trials"]), key=lambda trial: trial[METRIC])
    assert summary["best"]["trial_id"] == best["trial_id"] and summary["best"]["value"] == best[METRIC]
    (version,) = client.search_model_versions("name = 'swept'")
    assert version.run_id == best["run_id"] and str(version.version) == summary["model_version"]
    # The gate: the first model of this name becomes champion; the decision names the val value.
    assert summary["promotion"]["promoted"] and "champion" in summary["promotion"]["aliases"]
    assert f"val knn_top1={best[METRIC]:.4f}" in summary["promotion"]["reason"]
    assert client.get_run(best["run_id"]).data.tags["promotion.decision"].startswith("promoted")


@pytest.mark.parametrize("space, named", [
    ("params: {train.lrr: {loguniform: [0.001, 0.01]}}", "train.lrr: train has no field 'lrr'"),
    ("params: {train.lr: {uniform: [-0.1, 0.01]}}", "train.lr: -0.1 of uniform(-0.1, 0.01) is not a valid value"),
    ("params: {data.name: {choice: [a, b]}}", "data.name cannot be swept"),
])
def test_a_bad_space_exits_2_naming_the_key_before_anything_starts(tmp_path, space, named):
    (tmp_path / "space.yaml").write_text(space)
    ws = tmp_path / "ws"
    done = subprocess.run([sys.executable, "-m", "flows.cli", "sweep", "--space", str(tmp_path / "space.yaml"),
                           "--workspace", str(ws)], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=clpipe_environment())
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and str(tmp_path / "space.yaml") in done.stderr
    assert not ws.exists()  # nothing was created: no dataset, no MLflow store, no sweep folder


def test_resume_refuses_flags_that_would_change_the_sweep(tmp_path):
    done = subprocess.run([sys.executable, "-m", "flows.cli", "sweep", "--resume", "abc", "--trials", "9",
                           "--workspace", str(tmp_path / "ws")], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=clpipe_environment())
    assert done.returncode == 2 and "drop --trials" in done.stderr


@pytest.mark.slow
@pytest.mark.integration
def test_compare_lists_a_sweeps_trials_best_first_with_their_values(interrupted_and_resumed):
    result = interrupted_and_resumed
    summary, ws = result["summary"], result["ws"]
    compared = last_json(clpipe("compare", "--sweep", result["sweep_run"], "--json", workspace=ws))
    assert compared["metric"] == METRIC and compared["params"] == ["loss.temperature", "train.lr"]
    values = [run["metrics"][METRIC] for run in compared["runs"]]
    assert len(values) == 4 and values == sorted(values, reverse=True)
    assert values[0] == summary["best"]["value"]  # the best trial, or one that ties with it (34 val images)
    (registered,) = [run for run in compared["runs"] if run["model_version"]]
    assert registered["run_id"] == summary["best"]["run_id"] and registered["metrics"][METRIC] == values[0]
    assert registered["model_version"] == f"swept/{summary['model_version']}"
    assert sorted(run["stopped_early"] for run in compared["runs"]) == sorted(t["stopped_early"] for t in summary["trials"])
    table = clpipe("compare", "--sweep", result["sweep_run"], workspace=ws)
    assert table.returncode == 0 and f", sweep {result['sweep_run']} (4 trials), best first by {METRIC}" in table.stdout
    assert "(stopped early)" in table.stdout and "train.lr" in table.stdout.splitlines()[2]
    # Not a sweep's id: refused, naming it.
    refused = clpipe("compare", "--sweep", summary["best"]["run_id"], workspace=ws)
    assert refused.returncode == 1 and "is not a sweep" in refused.stderr


@pytest.mark.slow
@pytest.mark.integration
def test_the_trials_compare_side_by_side_in_the_mlflow_ui(interrupted_and_resumed, browser, tmp_path):
    result, client = interrupted_and_resumed, MlflowClient()
    runs = _trial_runs(client, result["sweep_run"])
    names = [run.info.run_name for run in runs]
    values = tuple(run.data.metrics[METRIC] for run in runs)
    sweep = client.get_run(result["sweep_run"])
    with mlflow_ui(result["ws"], tmp_path / "mlflow-server.log") as url:
        # The experiment's runs table shows the sweep's run, its trials nested under it.
        runs_page = page_text_with(browser, f"{url}/#/experiments/{sweep.info.experiment_id}/runs",
                                   [sweep.info.run_name], tmp_path / "runs.png")
        assert sweep.info.run_name in runs_page, runs_page[:2000]
        ids = json.dumps([run.info.run_id for run in runs], separators=(",", ":"))
        compare_url = f"{url}/#/compare-runs?runs={ids}&experiments={json.dumps([sweep.info.experiment_id])}"
        page = page_text_with(browser, compare_url, [*names, METRIC, "train.lr"], tmp_path / "compare.png", values)
    for item in (*names, METRIC, "train.lr", "loss.temperature"):
        assert item in page, (item, page[:3000])
    for value in values:
        assert shows(page, value), (value, page[:3000])
