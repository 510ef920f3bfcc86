"""End to end: `clpipe run` fine-tunes the pretrained EfficientNet-Lite0 on a small image folder
with 2 Ray workers (real Prefect, MLflow, Parquet), and evaluation scores the pretrained
backbone beside the fine-tuned one."""

from __future__ import annotations

import io

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image

from cl_core.embeddings import open_current
from tests.conftest import clpipe, last_json

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# Tiny on purpose: 1 epoch of 2 steps on 32 train images (4 more carved into val) at 32x32 (the backbone's smallest input).
SMALL = """
data: {name: photos, image_size: 32}
model: {backbone: efficientnet-lite0, freeze_stages: 3, proj_hidden: 64, proj_dim: 32}
views: {flip_p: 0.5, gray_p: 0.2}
loss: {name: supcon, temperature: 0.1}
train: {epochs: 1, batch_size: 16, lr: 0.001, backbone_lr_mult: 0.1, warmup_epochs: 0, workers: 2}
eval: {probe_max_iter: 100}
export: {batch_size: 64}
registry: {model_name: photos-lite0}
"""
CLASSES = {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 60, 200)}


def _photo(rng: np.random.Generator, colour: tuple[int, int, int], gray: bool) -> bytes:
    """A 40x40 JPEG: the class colour with a random bright square on noise."""
    pixels = np.clip(rng.normal(colour, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
    top, left = rng.integers(0, 24, 2)
    pixels[top : top + 16, left : left + 16] = 255
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    (image.convert("L") if gray else image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 4)):
        for name, colour in CLASSES.items():
            folder = root / "photos" / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                # One grayscale photo per class and split: replicated to RGB for the backbone.
                (folder / f"{index}.jpg").write_bytes(_photo(rng, colour, gray=index == 0))
    config = root / "small.yaml"
    config.write_text(SMALL)
    workspace = root / "workspace"
    summary = last_json(clpipe("run", "--source", str(root / "photos"), "--config", str(config), "--json",
                               workspace=workspace))
    mlflow.set_tracking_uri(f"sqlite:///{workspace / 'mlflow.db'}")
    yield {"summary": summary, "workspace": workspace, "root": root}
    mlflow.set_tracking_uri(None)


def test_the_pretrained_backbone_is_scored_beside_the_fine_tuned_one(finetuned):
    summary = finetuned["summary"]
    # train/ and test/ only: 4 of the 36 train photos are carved into val (data.val_fraction).
    assert summary["ingest"]["rows"] == 48 and summary["ingest"]["splits"] == {"train": 32, "val": 4, "test": 12}
    evaluated = summary["evaluate"]
    assert set(evaluated["baseline"]) == {"raw_knn_top1", "raw_linear_probe", "pretrained_knn_top1",
                                          "pretrained_linear_probe"}
    run = MlflowClient().get_run(summary["train"]["run_id"])
    for key in ("knn_top1", "linear_probe"):
        for split in ("val", "test"):
            assert run.data.metrics[f"eval.{split}.{key}"] == pytest.approx(evaluated["metrics"][f"{split}.{key}"])
        assert run.data.metrics[f"eval.pretrained.{key}"] == pytest.approx(evaluated["baseline"][f"pretrained_{key}"])
        assert 0 <= run.data.metrics[f"eval.pretrained.{key}"] <= 1
    # The gate reads the fine-tuned model's val kNN, never the pretrained one's (a test-split baseline).
    assert evaluated["promotion"]["reason"].startswith(
        f"no champion yet; v1 val knn_top1={evaluated['metrics']['val.knn_top1']:.4f} [")


def test_the_run_records_the_backbone_and_its_fine_tuning_controls(finetuned):
    run = MlflowClient().get_run(finetuned["summary"]["train"]["run_id"])
    assert run.data.tags["backbone"] == "efficientnet-lite0-pretrained"
    assert "freeze_stages 3" in run.data.tags["mlflow.note.content"]
    assert "backbone lr x0.1" in run.data.tags["mlflow.note.content"]
    assert run.data.params["model.backbone"] == "efficientnet-lite0"
    assert run.data.params["train.backbone_lr_mult"] == "0.1"
    assert sorted(m.step for m in MlflowClient().get_metric_history(run.info.run_id, "loss")) == [0]


def test_the_champion_embeds_raw_jpeg_bytes_as_the_exported_table(finetuned):
    summary, workspace = finetuned["summary"], finetuned["workspace"]
    model = mlflow.pyfunc.load_model("models:/photos-lite0@champion")
    photos = sorted((finetuned["root"] / "photos" / "test" / "red").glob("*.jpg"))
    vectors = model.predict(pd.DataFrame({"image": [path.read_bytes() for path in photos]}))
    assert vectors.shape == (4, 1280) and np.isfinite(vectors).all()
    table = open_current(workspace / "embeddings", "photos-lite0", "photos").to_table().to_pandas()
    assert len(table) == 48 == summary["reembed"]["rows"] and len(table["embedding"].iloc[0]) == 1280
    exported = np.stack(table.set_index("id").loc[[f"test/red/{p.stem}" for p in photos], "embedding"].to_numpy())
    np.testing.assert_allclose(vectors, exported, atol=1e-5)
