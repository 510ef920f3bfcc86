"""The `ray` export engine on a real two-node Ray cluster (infra/ray_local_cluster.sh, two
raylets on 127.0.0.1, token auth) with the model served by an MLflow tracking server over HTTP:
the pool's actors run on both nodes and the table equals the local engine's; an actor killed
with SIGKILL in the middle of an export is restarted by Ray and its batches retried, and the
table is complete (no row lost, none twice). The cluster and the server are the package's
(tests/infra/conftest.py), stopped by pid when its tests end."""

from __future__ import annotations

import os
import signal
import threading
import time
from functools import partial
from pathlib import Path

import mlflow
import numpy as np
import pytest
import ray
from ray.util.state import list_actors

from cl_core.datasets import DatasetStore
from cl_core.embeddings import EmbeddingTable, write_full_snapshot
from flows.ray_edge.embed import WORKERS_FOLDER, RayEngine
from flows.table_runs import load_embedder, load_registered
from tests.conftest import register_tiny_image_model

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MODEL, ROWS = "tiny-digits", 1797
BATCH_DELAY_S = 0.05  # per batch of 8 in the killed export: ~10 s over two actors, time to kill one
READY_WAIT_S = 120  # how long the first actor of the spread export waits for the second


def _slow_load(tracking_uri: str, model: dict[str, str]):
    """The registered model, each call slowed down so that the export is still running when the
    test kills an actor."""
    embed, dim, modality = load_registered(tracking_uri, model)

    def slow(inputs):
        time.sleep(BATCH_DELAY_S)
        return embed(inputs)

    return slow, dim, modality


def _node_recording_load(tracking_uri: str, model: dict[str, str], folder: str, actors: int = 2):
    """The registered model, each batch noting in `folder` the node that embedded it (the
    actor list cannot tell: an actor that has exited may report no node). An actor starts
    embedding only once `actors` have loaded (or after READY_WAIT_S), so that the first one up
    cannot take every batch while the second is still starting on a busy machine."""
    embed, dim, modality = load_registered(tracking_uri, model)
    node = ray.get_runtime_context().get_node_id()
    ready = Path(folder, "ready")
    ready.mkdir(exist_ok=True)
    (ready / f"{node}-{os.getpid()}").touch()
    deadline = time.monotonic() + READY_WAIT_S
    while len(list(ready.iterdir())) < actors and time.monotonic() < deadline:
        time.sleep(0.1)

    def recording(inputs):
        time.sleep(BATCH_DELAY_S)
        with open(os.path.join(folder, f"{node}-{os.getpid()}"), "a") as out:
            out.write(f"{len(inputs)}\n")
        return embed(inputs)

    return recording, dim, modality


def _record(model, dataset, action):
    return {"model_name": model["name"], "model_version": model["version"], "dataset_name": dataset.name,
            "dataset_version": dataset.version, "prefect_flow_run_id": None, "mlflow_run_id": None, "action": action}


def _export(root, name, dataset, engine, model, batch_size=64):
    table = EmbeddingTable(root / name, model["name"], dataset.name)
    with table.lock():
        return write_full_snapshot(table, dataset, engine, 8, _record(model, dataset, "export"), batch_size=batch_size,
                                   keep_snapshots=3)


def _map_workers(address: str) -> list:
    actors = list_actors(address=address, detail=True, raise_on_missing_output=False, limit=1000)
    return [actor for actor in actors if "MapWorker" in actor.class_name]


@pytest.mark.usefixtures("token_auth_driver")
def test_export_spreads_over_two_nodes_and_survives_a_killed_actor(tmp_path, monkeypatch, two_node_cluster,
                                                                   tracking_server):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    store = DatasetStore(tmp_path / "datasets")
    store.ingest("digits", "digits", limit=ROWS)
    dataset = store.resolve("digits")
    address, tracking_uri = two_node_cluster.address, tracking_server

    version = register_tiny_image_model(tracking_uri, MODEL)
    model = {"name": MODEL, "version": version}
    try:
        batches = tmp_path / "batches"
        batches.mkdir()
        engine = RayEngine(partial(_node_recording_load, tracking_uri, model, str(batches)), actors=2,
                           ray_address=address)
        spread = _export(tmp_path, "spread", dataset, engine, model, batch_size=8)
        nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        first_pool = {actor.actor_id for actor in _map_workers(address)}

        # SIGKILL one actor of a running export (in a thread: the driver call blocks).
        slow = RayEngine(partial(_slow_load, tracking_uri, model), actors=2, ray_address=address)
        outcome: dict = {}

        def run() -> None:
            try:
                outcome["snapshot"] = _export(tmp_path, "killed", dataset, slow, model, batch_size=8)
            except Exception as error:  # noqa: BLE001 - the test reports what Ray did
                outcome["error"] = error

        exporting = threading.Thread(target=run)
        exporting.start()
        killed = None
        deadline = time.monotonic() + 240
        while killed is None and exporting.is_alive() and time.monotonic() < deadline:
            staging = list((tmp_path / "killed" / MODEL / "digits").glob(f".staging-*/{WORKERS_FOLDER}/*.parquet"))
            workers = [a for a in _map_workers(address) if a.actor_id not in first_pool and a.state == "ALIVE"]
            if staging and workers:  # some output written, more to come
                killed = workers[0]
                os.kill(killed.pid, signal.SIGKILL)
            time.sleep(0.2)
        exporting.join(timeout=600)
        after = {a.actor_id: a for a in _map_workers(address) if a.actor_id not in first_pool}
    finally:
        ray.shutdown()
    mlflow.set_tracking_uri(tracking_uri)
    embed, _, _ = load_embedder(model)
    local = _export(tmp_path, "local", dataset, embed, model)

    assert len(nodes) == 2
    rows_by_node: dict[str, int] = {}
    for path in filter(Path.is_file, batches.iterdir()):  # one file per actor process: "<node>-<pid>", a line per batch
        node = path.name.rsplit("-", 1)[0]
        rows_by_node[node] = rows_by_node.get(node, 0) + sum(int(line) for line in path.read_text().split())
    assert set(rows_by_node) == nodes and sum(rows_by_node.values()) == ROWS, rows_by_node  # both nodes embedded
    a, b = local.read().sort_by("id"), spread.read().sort_by("id")
    assert a.column("id").equals(b.column("id")) and a.num_rows == ROWS
    vectors = [np.stack(t.column("embedding").to_numpy(zero_copy_only=False)) for t in (a, b)]
    np.testing.assert_allclose(vectors[0], vectors[1], rtol=0, atol=1e-6)

    assert killed is not None, "the export ended before an actor could be killed"
    # What Ray does: the actor is restarted (ActorPoolStrategy's default max_restarts=-1) and
    # its batches are retried (max_task_retries=-1), so the export completes with every row once.
    assert "error" not in outcome, outcome.get("error")
    snapshot = outcome["snapshot"]
    assert after[killed.actor_id].num_restarts >= 1
    rows = snapshot.read().sort_by("id")
    assert rows.num_rows == ROWS and rows.column("id").equals(a.column("id"))
    assert snapshot.manifest.rows == snapshot.manifest.rows_embedded == ROWS
    np.testing.assert_allclose(np.stack(rows.column("embedding").to_numpy(zero_copy_only=False)), vectors[0],
                               rtol=0, atol=1e-6)
    assert (tmp_path / "killed" / MODEL / "digits" / "CURRENT").read_text().strip() == snapshot.id
