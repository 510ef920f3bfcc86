"""The `ray` export engine against the local one, on a local Ray: the same table (ids, keys,
vectors to 1e-6, lineage) for an export and for a reembed after the dataset changed, where only
the changed rows go through Ray; a failure in the actors leaves CURRENT as it was. Real Ray Data,
a real MLflow registry (sqlite) and Parquet; a tiny registered model (no training) and 300
digits. That `--engine ray` reaches the pool through the CLI, the flow and its task is proven by
the one `clpipe reembed --engine ray` of tests/flows/test_reembed_e2e.py, and what export and
reembed hand their flows by tests/flows/test_cli.py."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import pyarrow as pa
import pytest
import ray
import torch

from cl_core.config import ExportConfig
from cl_core.datasets import DatasetStore, ImageRecord
from cl_core.datasets.sources.digits import read_digits
from cl_core.embeddings import EmbeddingTable, write_full_snapshot
from cl_core.embeddings.incremental import INCREMENTAL, write_incremental
from flows.ray_edge.embed import RayEngine, ray_engine
from flows.table_runs import load_embedder
from flows.workspace import Workspace
from tests.conftest import register_tiny_image_model

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MODEL, DATASET, ROWS = "tiny-digits", "digits", 300
NEW, CHANGED, DELETED = [f"d{i:04d}" for i in range(ROWS, ROWS + 5)], "d0007", "d0005"


def _records(ids: list[str], images: dict[str, bytes], labels: dict[str, int]) -> list[ImageRecord]:
    return [ImageRecord(i, images[i], labels[i], None) for i in ids]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A workspace with the tiny model registered (version 1) and two versions of 300 digits:
    the second without one row, with one image changed and five new rows."""
    ws = Workspace(tmp_path_factory.mktemp("ray-embed") / "workspace").create()
    version = register_tiny_image_model(ws.tracking_uri, MODEL, ws.mlflow_artifacts)
    digits = list(read_digits())
    images = {f"d{i:04d}": r.image for i, r in enumerate(digits)}
    labels = {f"d{i:04d}": r.label for i, r in enumerate(digits)}
    store = DatasetStore(ws.datasets)
    first_ids = [f"d{i:04d}" for i in range(ROWS)]
    first = store.ingest_records(_records(first_ids, images, labels), DATASET, description="digits v1").version
    images[CHANGED] = digits[400].image  # the same id, another image
    second_ids = [i for i in first_ids if i != DELETED] + NEW
    second = store.ingest_records(_records(second_ids, images, labels), DATASET, description="digits v2").version
    previous = os.environ.pop("RAY_ADDRESS", None)
    model = {"name": MODEL, "version": version}
    yield {"ws": ws, "model": model, "first": store.resolve(DATASET, first), "second": store.resolve(DATASET, second)}
    ray.shutdown()
    mlflow.set_tracking_uri(None)
    if previous is not None:
        os.environ["RAY_ADDRESS"] = previous


def _record(model: dict, dataset, action: str) -> dict:
    return {"model_name": model["name"], "model_version": model["version"], "dataset_name": dataset.name,
            "dataset_version": dataset.version, "prefect_flow_run_id": None, "mlflow_run_id": None, "action": action}


def _engines(setup) -> dict:
    """engine name -> what write_full_snapshot / write_incremental take."""
    mlflow.set_tracking_uri(setup["ws"].tracking_uri)
    embed, _, _ = load_embedder(setup["model"])
    return {"local": embed, "ray": ray_engine(setup["model"], setup["ws"].tracking_uri, ExportConfig(actors=2))}


def _same_table(local, distributed) -> None:
    a, b = local.read().sort_by("id"), distributed.read().sort_by("id")
    keys = ["id", "split", "label", "content_sha256", "model_name", "model_version", "dataset_version"]
    assert a.num_rows == b.num_rows and a.select(keys).equals(b.select(keys))
    vectors = [np.stack(t.column("embedding").to_numpy(zero_copy_only=False)) for t in (a, b)]
    np.testing.assert_allclose(vectors[0], vectors[1], rtol=0, atol=1e-6)
    fields = ("rows", "dimension", "rows_embedded", "rows_reused", "rows_deleted", "model_name", "model_version",
              "dataset_version", "action")
    assert {f: getattr(local.manifest, f) for f in fields} == {f: getattr(distributed.manifest, f) for f in fields}


def test_both_engines_export_and_reembed_the_same_table(setup):
    model, first, second = setup["model"], setup["first"], setup["second"]
    published = {}
    for name, engine in _engines(setup).items():
        table = EmbeddingTable(setup["ws"].root / name, model["name"], DATASET)
        with table.lock():
            exported = write_full_snapshot(table, first, engine, 8, _record(model, first, "export"), batch_size=64,
                                           keep_snapshots=3)
            reembedded = write_incremental(table, exported, second, engine, _record(model, second, INCREMENTAL),
                                           batch_size=64, keep_snapshots=3)
        assert not list(table.path.glob(".staging-*"))
        published[name] = (exported, reembedded)
    (local_export, local_reembed), (ray_export, ray_reembed) = published["local"], published["ray"]
    _same_table(local_export, ray_export)
    assert ray_export.manifest.rows == ray_export.manifest.rows_embedded == ROWS
    _same_table(local_reembed, ray_reembed)
    # Only the new and the changed rows went through Ray; the rest were copied from the parent.
    m = ray_reembed.manifest
    assert (m.rows, m.rows_embedded, m.rows_reused, m.rows_deleted) == (ROWS + 4, 6, ROWS - 2, 1)
    fresh = ray_reembed.read().filter(pa.compute.is_in(ray_reembed.read().column("id"), pa.array([*NEW, CHANGED])))
    assert set(fresh.column("dataset_version").to_pylist()) == {second.version}
    assert ray_reembed.manifest.files == sorted(ray_reembed.manifest.files)


def _failing_load():
    """A model whose every call fails, as a broken model version would in the actors."""
    def embed(inputs):
        raise RuntimeError(f"model exploded on a batch of {len(inputs)} images")

    return embed, 8, "image"


def _backfill_fails_and_leaves_current(setup, folder: str, engine, error: type, match: str) -> None:
    """A local export, then a backfill on `engine` that raises `error`: CURRENT and the
    snapshots stay as they were and no staging folder is left."""
    model, first = setup["model"], setup["first"]
    table = EmbeddingTable(setup["ws"].root / folder, model["name"], DATASET)
    with table.lock():
        before = write_full_snapshot(table, first, _engines(setup)["local"], 8, _record(model, first, "export"),
                                     batch_size=64, keep_snapshots=3)
        with pytest.raises(error, match=match):
            write_full_snapshot(table, first, engine, 8, _record(model, first, "backfill"), batch_size=64,
                                keep_snapshots=3)
    assert table.current_id() == before.id and table.snapshot_ids() == [before.id]
    assert not list(table.path.glob(".staging-*"))


def test_a_failure_in_the_actors_leaves_current_and_no_staging(setup):
    _backfill_fails_and_leaves_current(setup, "failing", RayEngine(_failing_load, actors=1), Exception,
                                       "model exploded on a batch of")


def _interactions_load():
    """The fake recommender of the interaction-row tests, as an actor loads a model."""
    from tests.cl_core.embeddings.test_interaction_rows import fake_model

    return fake_model, 2, "interactions"


def test_users_and_items_embed_the_same_on_both_engines(setup, tmp_path):
    """An interactions version: the driver builds the users' and items' inputs, the pool
    embeds them; the same inputs reach the model as with the local engine."""
    from tests.cl_core.embeddings.conftest import record
    from tests.cl_core.embeddings.test_interaction_rows import _version, fake_model

    version = _version(DatasetStore(tmp_path / "d"), tmp_path / "v1")
    snapshots = {}
    for name, engine in (("local", fake_model), ("ray", RayEngine(_interactions_load, actors=1))):
        table = EmbeddingTable(tmp_path / name, "m", "shop")
        with table.lock():
            snapshots[name] = write_full_snapshot(table, version, engine, 2, record(dataset_version=version.version),
                                                  batch_size=4, keep_snapshots=1)
    local, distributed = (snapshots[n].read().sort_by([("entity", "ascending"), ("id", "ascending")])
                          for n in ("local", "ray"))
    assert distributed.num_rows == 6
    assert local.drop_columns(["created_at"]).equals(distributed.drop_columns(["created_at"]))


def _fake_text_embed(texts: list[str]) -> np.ndarray:
    return np.array([[len(t), float(sum(t.encode()) % 997)] for t in texts], dtype=np.float32)


def _text_load():
    """A deterministic stand-in for a sentence encoder, as an actor loads a model."""
    return _fake_text_embed, 2, "text"


def test_sentences_export_and_reembed_the_same_on_both_engines(setup, tmp_path):
    """A text version of pairs and single sentences, then a version with one second sentence
    changed and a new pair: both engines give the same tables, and the reembed reads and embeds
    only the changed sentences."""
    from cl_core.datasets import TextPairRecord
    from tests.cl_core.embeddings.conftest import record

    store = DatasetStore(tmp_path / "datasets", row_group_rows=4)

    def version(records):
        return store.resolve("t", store.ingest_text_records(records, "t", description="t").version)

    pairs = [TextPairRecord(f"p{i}", f"first {i}", f"second {i}" if i % 3 else None) for i in range(10)]
    first = version(pairs)
    pairs[4] = TextPairRecord("p4", "first 4", "another second 4")
    second = version([*pairs, TextPairRecord("p10", "first 10", "second 10")])
    snapshots = {}
    for name, engine in (("local", _fake_text_embed), ("ray", RayEngine(_text_load, actors=1))):
        table = EmbeddingTable(tmp_path / name, "m", "t")
        with table.lock():
            exported = write_full_snapshot(table, first, engine, 2, record(dataset_version=first.version),
                                           batch_size=4, keep_snapshots=3)
            snapshots[name] = (exported, write_incremental(table, exported, second, engine,
                                                           record(dataset_version=second.version, action=INCREMENTAL),
                                                           batch_size=4, keep_snapshots=3))
    for local, distributed in zip(snapshots["local"], snapshots["ray"], strict=True):
        assert local.read().drop_columns(["created_at"]).sort_by("id").equals(
            distributed.read().drop_columns(["created_at"]).sort_by("id"))
    m = snapshots["ray"][1].manifest
    assert (m.rows, m.rows_embedded, m.rows_reused) == (18, 3, 15)  # p4/2, p10/1, p10/2


def test_gpu_actors_on_a_cluster_without_gpus_fail_fast_and_leave_current(setup):
    """Ray Data would only warn and wait for a GPU node; the engine says what to change."""
    engine = ray_engine(setup["model"], setup["ws"].tracking_uri, ExportConfig(actors=1, num_gpus=1))
    _backfill_fails_and_leaves_current(setup, "no-gpu", engine, ValueError,
                                       r"export.num_gpus is 1 per actor, but the Ray cluster has 0 GPUs")


def test_gpu_actors_load_the_model_onto_the_gpu(setup):
    """An actor that holds a GPU asks for the model on "cuda"; without CUDA the load says so."""
    model = setup["model"]
    assert ray_engine(model, setup["ws"].tracking_uri, ExportConfig(num_gpus=1)).load.args[-1] == "cuda"
    assert ray_engine(model, setup["ws"].tracking_uri, ExportConfig()).load.args[-1] is None
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the no-CUDA error cannot happen here")
    from flows.table_runs import load_registered

    with pytest.raises(RuntimeError, match=rf"{MODEL} version {model['version']} was to embed on cuda, but torch "
                                           r"sees no CUDA device"):
        load_registered(setup["ws"].tracking_uri, {"name": model["name"], "version": model["version"]}, "cuda")
