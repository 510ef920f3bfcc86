"""Shared test helpers: the real-data location, the `clpipe` command line, free ports, the
two-process gloo harness, and the session's one `clpipe run` on digits that the end-to-end tests
read (a copy of its workspace for a test that changes it)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from tests import parallel
from tests.services import CliServices, free_port

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """../shared/data beside the checkout, or $CLPIPE_SHARED_DATA."""
    return Path(os.environ.get("CLPIPE_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def require_shared(subfolder: str) -> Path:
    path = shared_data_dir() / subfolder
    if not path.is_dir():
        pytest.skip(f"real data {subfolder!r} not found at {path}; set CLPIPE_SHARED_DATA to the data folder")
    return path


CLI_SERVICES = CliServices()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs on two workers (tests/parallel.py)
        parallel.slow_modules_first(items)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    config.option.loadscopereorder = False  # keep the slow-first order of the collection
    return parallel.ModuleScheduling(config, log)


@pytest.fixture(scope="session", autouse=True)
def _stop_cli_services():
    """Stop the services `clpipe` started, if any, when the session ends."""
    yield
    CLI_SERVICES.stop()


def clpipe(*args: str, workspace: Path, timeout: int = 900,
           env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess:
    """Run the installed CLI in a fresh interpreter, exactly as a user would with a running Prefect
    server: the session's one. `env` adds variables, or with None removes them; an `env` that names
    PREFECT_API_URL keeps the call off the shared server."""
    command = [sys.executable, "-m", "flows.cli", *args, "--workspace", str(workspace)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=clpipe_environment(env))


def clpipe_together(*calls: tuple[str, ...], workspace: Path, timeout: int = 900) -> list[subprocess.CompletedProcess]:
    """`clpipe(*args, workspace=workspace)` for each `args` in `calls`, all started at once, in order:
    for calls that neither depend on nor change each other's state. Such a call is mostly one
    busy core (start-up, imports, loading a model), and the test machine has two."""
    clpipe_environment()  # the session's Prefect server, started here, not by two threads at once
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda args: clpipe(*args, workspace=workspace, timeout=timeout), calls))


def clpipe_environment(env: dict[str, str | None] | None = None) -> dict[str, str]:
    """The environment `clpipe` gives the CLI, for a test that starts the process itself."""
    overrides = env or {}
    # The user's own services stay out of tests unless a test passes them in `env`.
    environment = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS")}
    environment.update(CLI_SERVICES.environment(keep=set(overrides)))
    for key, value in overrides.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return environment


def last_json(result: subprocess.CompletedProcess) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0, f"clpipe failed ({result.returncode}):\n{result.stderr[-4000:]}"
    return json.loads(lines[-1])


# A `clpipe run` costs 1.5-3 minutes on 2 cores: the tests that only read what one produced (the
# console output, the log, the registry, the evaluation, the embedding table) share this one.
DIGITS_RUN_EPOCHS = 2
DIGITS_RUN_CONFIG = f"""
data: {{limit: 500, image_size: 16}}
model: {{depths: [1, 1], widths: [16, 32], proj_hidden: 64, proj_dim: 32}}
views: {{flip_p: 0.0, gray_p: 0.0}}
train: {{epochs: {DIGITS_RUN_EPOCHS}, batch_size: 64, workers: 2}}
eval: {{probe_max_iter: 200}}
"""


@dataclass(frozen=True)
class DigitsRun:
    """What `clpipe run --config CONFIG --json` left: its output (stdout the JSON line, stderr the
    console's step lines), the parsed summary, and the workspace's log files right after it."""

    result: subprocess.CompletedProcess
    summary: dict
    workspace: Path
    config: Path
    logs: list[Path]


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> DigitsRun:
    """500 digits, 2 epochs on 2 Ray workers, evaluated, registered as champion, exported. Read
    it, never change it: a test that trains, promotes or exports copies it (`copy_workspace`)."""
    root = tmp_path_factory.mktemp("digits-run")
    config = root / "small.yaml"
    config.write_text(DIGITS_RUN_CONFIG)
    workspace = root / "workspace"
    result = clpipe("run", "--config", str(config), "--json", workspace=workspace)
    summary = last_json(result)
    return DigitsRun(result, summary, workspace, config, sorted((workspace / "logs").glob("*.log")))


def copy_workspace(source: Path, target: Path) -> Path:
    """A copy of a workspace for a test that changes it. The copy's MLflow store still names the
    source's artifact files for the runs and models already there (read only); its experiments
    point at the copy, so that runs logged into it keep their artifacts out of the source."""
    shutil.copytree(source, target)
    with contextlib.closing(sqlite3.connect(target / "mlflow.db")) as store, store:
        store.execute("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)",
                      (source.as_uri(), target.as_uri()))
    return target


# The same data (so the same dataset version), but a challenger that cannot beat the champion: a
# 2-channel encoder (2-d features, after a ReLU: kNN can only tell angles in one quadrant apart),
# trained one epoch on one worker at a negligible learning rate.
LOSING_CHALLENGER = DIGITS_RUN_CONFIG.replace("depths: [1, 1], widths: [16, 32], proj_hidden: 64, proj_dim: 32",
                                              "depths: [1], widths: [2], proj_hidden: 8, proj_dim: 4").replace(
    f"epochs: {DIGITS_RUN_EPOCHS}, batch_size: 64, workers: 2", "epochs: 1, batch_size: 64, workers: 1, lr: 1.0e-9")


@pytest.fixture(scope="session")
def digits_challenger(digits_run, tmp_path_factory) -> dict:
    """A copy of the digits run's workspace where a second `clpipe run --config LOSING_CHALLENGER`
    (what the `train` deployment runs every day) registered version 2 as challenger and scored it
    against the champion, which it cannot beat: two evaluated training runs in experiment
    digits-ntxent. `trained` and `evaluated` are that run's `train` and `evaluate` summaries,
    `result` and `summary` its output, `config` its config file; `table_before` / `table_after` are the champion table's
    CURRENT and listing right before and right after it (a later test exports into the copy)."""
    root = tmp_path_factory.mktemp("digits-challenger")
    workspace = copy_workspace(digits_run.workspace, root / "workspace")
    table = workspace / "embeddings" / "digits-ntxent" / "digits"

    def table_state() -> tuple[str, list[str]]:
        return (table / "CURRENT").read_text(), sorted(p.name for p in table.iterdir())

    before = table_state()
    config = root / "losing.yaml"
    config.write_text(LOSING_CHALLENGER)
    result = clpipe("run", "--config", str(config), "--json", workspace=workspace)
    summary = last_json(result)
    return {"workspace": workspace, "config": config, "result": result, "summary": summary, "trained": summary["train"],
            "evaluated": summary["evaluate"], "table_before": before, "table_after": table_state()}


def _distributed_rank(rank: int, worker: Callable[[int], Any], world_size: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        results[rank] = worker(rank)
    finally:
        dist.destroy_process_group()


def run_distributed(worker: Callable[[int], Any], world_size: int = 2) -> list[Any]:
    """Run `worker(rank)` in `world_size` fresh processes joined in one gloo process group and
    return what each rank returned, by rank. `worker` must be a module-level function (spawn
    pickles it by name) and its result picklable; an exception in any rank fails the call."""
    with mp.get_context("spawn").Manager() as manager:
        results = manager.dict()
        mp.start_processes(_distributed_rank, args=(worker, world_size, free_port(), results), nprocs=world_size,
                           start_method="spawn", join=True)
        return [results[rank] for rank in range(world_size)]


@pytest.fixture(name="run_distributed")
def run_distributed_fixture() -> Callable[..., list[Any]]:
    """`run_distributed` for tests that spawn a gloo process group."""
    return run_distributed


TINY_IMAGE_MODEL = {"data": {"image_size": 8}, "model": {"depths": [1], "widths": [8], "proj_hidden": 16, "proj_dim": 8}}


def register_tiny_image_model(tracking_uri: str, name: str, artifacts: Path | None = None) -> str:
    """Register a tiny image encoder with seeded random weights (no training) as a new version
    of `name` in the registry at `tracking_uri` (sqlite, or a server over HTTP) through the
    project's registry code, exactly as training registers one; returns the version. 8x8
    grayscale input, 8-d embeddings (the encoder's width)."""
    import mlflow
    import torch

    from cl_core.config import build_config
    from cl_core.models.spec import ImageModelSpec
    from flows.mlflow_edge.registry import log_embedder, register

    cfg = build_config(TINY_IMAGE_MODEL)
    spec = ImageModelSpec.from_config(cfg.model, cfg.data.image_size, channels=1)
    torch.manual_seed(0)
    model = spec.build_training_model().eval()
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(
        name, artifact_location=artifacts.as_uri() if artifacts else None)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info, _ = log_embedder({"model": model.state_dict(), "model_meta": spec.to_dict()})
    return str(register(info.model_uri, name, run.info.run_id).version)


def register_changed_image_model(name: str, version: str, seed: int | None = None, scale: float = 0.1) -> str:
    """Register, as a new version of `name` in the current tracking registry, the image encoder
    of `name`/`version` with seeded noise (`scale` x N(0, 1)) added to every floating-point
    weight, through the project's registry code; returns the version. Its vectors differ from
    `version`'s (and, with the default seed, the number of the version it becomes, from every
    other version made this way), so a backfill that copied old vectors would be seen."""
    import mlflow
    import torch

    from flows.mlflow_edge.registry import log_image_embedder, register

    source = mlflow.MlflowClient().get_model_version(name, version)
    if seed is None:
        seed = 1 + max(int(v.version) for v in mlflow.MlflowClient().get_registered_model(name).latest_versions)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model()
    generator = torch.Generator().manual_seed(seed)
    state = {f"embedder.{key}": value + scale * torch.randn(value.shape, generator=generator, dtype=value.dtype)
             if value.is_floating_point() else value for key, value in loaded.embedder.state_dict().items()}
    experiment_id = mlflow.MlflowClient().get_run(source.run_id).info.experiment_id
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"changed-v{version}") as run:
        info = log_image_embedder({"model": state, "model_meta": loaded.meta})
    return str(register(info.model_uri, name, run.info.run_id).version)


def assert_vectors_differ(parent: Any, child: Any, atol: float = 1e-4) -> None:
    """Every row of `child` (a pyarrow table with `id` and `embedding`) has a vector that differs
    from the same id's in `parent`: it was embedded again, not copied."""
    import numpy as np

    def by_id(table: Any) -> dict[str, np.ndarray]:
        vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
        return dict(zip(table.column("id").to_pylist(), vectors, strict=True))

    old, new = by_id(parent), by_id(child)
    assert new and set(new) <= set(old)
    same = [key for key, vector in new.items() if old[key].shape == vector.shape and np.allclose(old[key], vector, atol=atol)]
    assert not same, f"{len(same)} of {len(new)} rows kept their parent's vectors, e.g. {same[:3]}"


def _chromium_and_driver() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("needs the Debian packages chromium and chromium-driver (.ci/run installs them)")
    return chromium, driver


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium through selenium (the Debian packages chromium and chromium-driver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = _chromium_and_driver()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
                 "--window-size=1600,1000"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    yield chrome
    chrome.quit()
