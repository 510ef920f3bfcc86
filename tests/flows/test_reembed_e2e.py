"""The embedding table through the CLI, on an image folder: export, then files change and
`clpipe reembed --engine ray` embeds only what changed on a Ray Data actor pool (the suite's one
CLI call that takes the flag to the pool for real); a local export agrees with it; a new model
version backfills. Real Prefect, MLflow, Ray and Parquet, tiny data and model. A reembed with
nothing to do is test_reembed_processes.py's (two processes, one snapshot) and
test_recommender_pipeline.py's (through the CLI)."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest
from mlflow import MlflowClient
from PIL import Image
from sklearn.datasets import load_digits

from tests.conftest import clpipe, last_json

pytestmark = [pytest.mark.slow, pytest.mark.integration]

N, K = 60, 4
TINY = """
data: {image_size: 8}
model: {depths: [1], widths: [16], proj_hidden: 32, proj_dim: 16}
views: {flip_p: 0.0, gray_p: 0.0}
train: {epochs: 1, batch_size: 16, workers: 1}
eval: {probe_max_iter: 50, knn_k: 5}
"""


def _write_png(path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray((pixels * 15).astype(np.uint8)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


def _vectors(path) -> dict[str, np.ndarray]:
    table = ds.dataset(sorted(str(p) for p in path.glob("part-*.parquet"))).to_table(columns=["id", "embedding"])
    ids = table.column("id").to_pylist()
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))  # (N, D)
    return dict(zip(ids, vectors, strict=True))


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("reembed")
    digits = load_digits()
    source = root / "images"
    for i in range(N):
        _write_png(source / str(digits.target[i]) / f"{i:04d}.png", digits.images[i])
    config = root / "tiny.yaml"
    config.write_text(TINY)
    workspace = root / "workspace"
    summary = last_json(clpipe("run", "--source", str(source), "--name", "imgs", "--config", str(config), "--json",
                               workspace=workspace))
    # The last test's second training (two epochs, where the first model trained one: other weights, so other
    # vectors) starts now, on the first dataset version, and runs beside the tests before it: it registers a
    # challenger only (champion, which they read and export, stays) and writes no table. Mostly one busy core.
    with ThreadPoolExecutor(1) as pool:
        second_training = pool.submit(clpipe, "train", "--dataset", "imgs", "--config", str(config), "--epochs", "2",
                                      "--json", workspace=workspace)
        yield {"root": root, "source": source, "digits": digits, "config": config, "workspace": workspace,
               "summary": summary, "second_training": second_training}


def test_export_writes_a_snapshot_that_table_shows(table):
    exported, workspace = table["summary"]["reembed"], table["workspace"]  # `clpipe run` ends with reembed
    assert exported["rows"] == exported["rows_embedded"] == N and exported["action"] == "backfill"
    shown = last_json(clpipe("table", "--model", "imgs-ntxent", "--dataset", "imgs", "--json", workspace=workspace))
    current = shown["current"]
    assert current["snapshot"] == exported["snapshot"] and current["rows"] == N and current["dimension"] == 16
    assert current["mlflow_run_id"] == exported["mlflow_run_id"] and current["prefect_flow_run_id"]


def test_reembed_embeds_only_new_and_changed_rows(table):
    source, digits, workspace = table["source"], table["digits"], table["workspace"]
    before = table["summary"]["reembed"]
    for i in range(N, N + K):  # k new images
        _write_png(source / str(digits.target[i]) / f"{i:04d}.png", digits.images[i])
    changed = source / str(digits.target[1]) / "0001.png"
    _write_png(changed, digits.images[N + K])  # one image changed in place
    (source / str(digits.target[2]) / "0002.png").unlink()  # one deleted
    ingested = last_json(clpipe("ingest", str(source), "--name", "imgs", "--json", workspace=workspace))
    assert ingested["rows"] == N + K - 1

    result = last_json(clpipe("reembed", "--model", "imgs-ntxent", "--dataset", "imgs", "--engine", "ray", "--actors",
                              "1", "--json", workspace=workspace))
    assert "MapBatches(_EmbedActor)" in Path(result["log"]).read_text()  # the rows went through the Ray pool
    assert result["action"] == "incremental" and result["dataset_version"] == ingested["version"]
    assert (result["rows_embedded"], result["rows_deleted"], result["rows"]) == (K + 1, 1, N + K - 1)
    assert result["rows_reused"] == N - 2
    assert set(result) >= {"action", "model_name", "model_version", "dataset_name", "dataset_version", "snapshot",
                           "table_path", "rows", "rows_embedded", "rows_reused", "rows_deleted", "seconds"}
    table_path = workspace / "embeddings" / "imgs-ntxent" / "imgs"
    manifest = json.loads((table_path / result["snapshot"] / "manifest.json").read_text())
    assert manifest["parent"] == before["snapshot"] and manifest["mlflow_run_id"] == result["mlflow_run_id"]
    old, new = _vectors(table_path / before["snapshot"]), _vectors(table_path / result["snapshot"])
    reused = set(old) & set(new) - {changed.relative_to(source).with_suffix("").as_posix()}
    assert len(reused) == N - 2
    assert all(new[key].tobytes() == old[key].tobytes() for key in reused)  # copied, bit for bit

    snapshots = sorted(p.name for p in table_path.iterdir() if not p.name.startswith((".", "CURRENT")))
    assert snapshots == sorted([before["snapshot"], result["snapshot"]])

    fresh = last_json(clpipe("export", "--model", "imgs-ntxent@champion", "--dataset", "imgs", "--json", workspace=workspace))
    full = _vectors(table_path / fresh["snapshot"])
    assert sorted(full) == sorted(new)
    assert max(np.abs(full[key] - new[key]).max() for key in full) <= 1e-6  # local export == the Ray pool's rows


def test_a_new_model_version_backfills_and_bad_input_changes_nothing(table):
    workspace = table["workspace"]
    table_path = workspace / "embeddings" / "imgs-ntxent" / "imgs"
    current = (table_path / "CURRENT").read_text()
    missing = clpipe("reembed", "--model", "imgs-ntxent@nosuchalias", "--dataset", "imgs", workspace=workspace)
    trained = last_json(table["second_training"].result())  # `clpipe train --epochs 2`, started by the fixture
    assert missing.returncode == 1 and "nosuchalias" in missing.stderr
    assert (table_path / "CURRENT").read_text() == current

    # The table follows champion: the new version is promoted, as a winning evaluation would.
    MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}").set_registered_model_alias(
        "imgs-ntxent", "champion", trained["model_version"])
    result = last_json(clpipe("reembed", "--model", f"imgs-ntxent/{trained['model_version']}", "--dataset", "imgs",
                              "--json", workspace=workspace))
    assert result["action"] == "backfill" and result["model_version"] == trained["model_version"]
    assert result["rows"] == result["rows_embedded"] == N + K - 1 and result["rows_reused"] == 0
    assert (table_path / "CURRENT").read_text().strip() == result["snapshot"]
    old, new = _vectors(table_path / current.strip()), _vectors(table_path / result["snapshot"])
    assert sorted(new) == sorted(old)
    assert all(np.abs(new[key] - old[key]).max() > 1e-4 for key in new)  # embedded anew, not copied from the parent
