"""The `ray` ingest engine on a real two-node Ray cluster (infra/ray_local_cluster.sh, both raylets
on 127.0.0.1; the package's, tests/infra/conftest.py): its tasks run on both nodes, and the version
is the one the local engine makes."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import ray
from PIL import Image

from cl_core.datasets import DatasetStore
from flows.ray_edge.ingest import ingest_with_ray

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((7, 7), value % 256, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _shards(folder, shards: int, per_shard: int):
    folder.mkdir(parents=True)
    for s in range(shards):
        with tarfile.open(folder / f"toy-train-{s:04d}.tar", "w") as tar:
            for i in range(per_shard):
                key = f"s{s}-{i:03d}"
                for name, data in ((f"{key}.png", _png(s * per_shard + i)), (f"{key}.cls", str(i % 4).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return folder


def test_ray_ingest_runs_on_both_nodes_and_matches_the_local_version(tmp_path, monkeypatch, two_node_cluster,
                                                                     token_auth_driver):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    source = _shards(tmp_path / "shards", shards=8, per_shard=40)
    local = DatasetStore(tmp_path / "local").ingest(str(source), "toy")
    store = DatasetStore(tmp_path / "ray")  # every node reaches tmp_path: they share this machine
    try:
        result = ingest_with_ray(store, source, "toy", ray_address=two_node_cluster.address)
        nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    finally:
        ray.shutdown()
    assert len(nodes) == 2
    assert set(result.details["nodes"]) == nodes  # read, checked or written a bucket on each node
    assert (result.version, result.rows, result.splits) == (local.version, 320, local.splits)
    assert store.resolve("toy").read().equals(DatasetStore(tmp_path / "local").resolve("toy").read())
