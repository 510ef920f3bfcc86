"""Training spreads over a real two-node Ray cluster: infra/ray_local_cluster.sh starts two
raylets on 127.0.0.1, an MLflow tracking server takes the metrics over HTTP, and
`flows.ray_edge.train_launch.fit` joins the cluster by address with STRICT_SPREAD placement, so each node
runs one Ray Train worker. The cluster and the server are the package's (tests/infra/conftest.py),
which stops both by pid and checks that no node process is left."""

from __future__ import annotations

import pytest
import ray
from mlflow.tracking import MlflowClient
from ray.util.state import list_actors

from cl_core.config import build_config
from cl_core.datasets import DatasetStore
from flows.ray_edge.train_launch import fit

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_strict_spread_training_runs_a_worker_on_each_node(tmp_path, monkeypatch, two_node_cluster, tracking_server,
                                                          token_auth_driver):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("CLPIPE_FAULT_INJECTION", raising=False)
    store = DatasetStore(tmp_path / "datasets")
    store.ingest("digits", "digits", limit=200)
    dataset = store.resolve("digits")
    cfg = build_config({
        "data": {"name": "digits"},
        "model": {"depths": [1], "widths": [8], "proj_hidden": 16, "proj_dim": 8},
        "train": {"epochs": 2, "batch_size": 32, "workers": 2, "placement_strategy": "STRICT_SPREAD"},
    })
    storage = tmp_path / "checkpoints"
    address = two_node_cluster.address

    client = MlflowClient(tracking_server)
    experiment = client.create_experiment("two-nodes")
    run_id = client.create_run(experiment).info.run_id
    try:
        outcome = fit(cfg, dataset, tmp_path / "datasets", storage, run_id, tracking_server,
                      ray_address=address, name="two-nodes")
        # Joined the cluster (Ray may report the machine's routable address, not 127.0.0.1).
        assert ray.get_runtime_context().gcs_address.rsplit(":", 1)[1] == address.rsplit(":", 1)[1]
        nodes = {node["NodeID"]: node["Resources"] for node in ray.nodes() if node["Alive"]}
        # The Train workers are actors; the GCS keeps finished ones with the node they ran on.
        # The address is explicit: other Ray instances on this machine defeat auto-detection.
        workers = list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker")], detail=True,
                              raise_on_missing_output=False)
    finally:
        ray.shutdown()
    client.set_terminated(run_id)
    runs = [run.info.run_id for run in client.search_runs([experiment])]
    loss_steps = sorted(metric.step for metric in client.get_metric_history(run_id, "loss"))

    assert len(nodes) == 2
    assert sorted(name for resources in nodes.values() for name in resources if name.startswith("node_")) == ["node_0", "node_1"]
    assert len(workers) == 2, workers
    assert {worker.node_id for worker in workers} == set(nodes)
    assert outcome.final_metrics["world_size"] == 2 and outcome.final_metrics["epoch"] == 1

    assert runs == [run_id]
    assert loss_steps == [0, 1]  # rank 0 logged each epoch over HTTP

    checkpoints = sorted(path for path in (storage / "two-nodes").glob("checkpoint_*") if path.is_dir())
    assert len(checkpoints) == 2  # one per epoch; num_to_keep is 2
    assert outcome.checkpoint_dir.parent == storage / "two-nodes"
    assert (outcome.checkpoint_dir / "state.pt").is_file()
    assert outcome.state["epoch"] == 1
