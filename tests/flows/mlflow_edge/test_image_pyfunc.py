"""image_pyfunc.py: a fine-tuned EfficientNet-Lite0 logged to MLflow (real sqlite store) embeds
raw JPEG bytes exactly as the training-time encoder does in eval mode, grayscale included, and
hands evaluation the pretrained backbone it started from."""

from __future__ import annotations

import io

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cl_core.config import build_config
from cl_core.datasets import decode_images
from cl_core.models.spec import ImageModelSpec
from flows.mlflow_edge.registry import log_embedder

SIZE = 48


def _jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A Lite0 'trained' for one optimizer step (so its weights differ from the pretrained
    ones), logged through the registry code and loaded back as MLflow loads it."""
    root = tmp_path_factory.mktemp("pyfunc")
    cfg = build_config({"data": {"image_size": SIZE}, "model": {"backbone": "efficientnet-lite0", "freeze_stages": 3,
                                                              "proj_hidden": 32, "proj_dim": 8}})
    spec = ImageModelSpec.from_config(cfg.model, cfg.data.image_size, channels=1)
    torch.manual_seed(0)
    trained = spec.build_training_model()
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=1e-2)
    trained(torch.randint(0, 256, (4, 3, SIZE, SIZE), dtype=torch.uint8)).pow(2).mean().backward()
    optimizer.step()
    trained.eval()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("lite0", artifact_location=(root / "art").as_uri()))
    with mlflow.start_run():
        info, dim = log_embedder({"model": trained.state_dict(), "model_meta": spec.to_dict()})
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    yield {"trained": trained, "spec": spec, "info": info, "dim": dim, "loaded": loaded}
    mlflow.set_tracking_uri(None)


def test_jpeg_bytes_embed_as_the_training_encoder_in_eval_mode(logged):
    rng = np.random.default_rng(0)
    colour = [_jpeg(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)) for _ in range(3)]
    gray = _jpeg(rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8))
    vectors = logged["loaded"].predict(pd.DataFrame({"image": [*colour, gray]}))
    assert vectors.shape == (4, 1280) == (4, logged["dim"]) and vectors.dtype == np.float32
    # What training fed the encoder: decoded at the model's size, grayscale replicated to RGB.
    decoded = decode_images([*colour, gray], SIZE, 3)
    assert torch.equal(decoded[3, 0], decoded[3, 1]) and torch.equal(decoded[3, 0], decoded[3, 2])
    with torch.inference_mode():
        expected = logged["trained"].embedder(decoded).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-4, rtol=1e-4)


def test_the_model_config_carries_backbone_size_and_normalisation_and_its_requirements(logged):
    config = logged["loaded"].model_config
    assert config["backbone"] == "efficientnet-lite0" and config["image_size"] == SIZE and config["channels"] == 3
    assert config["pixel_mean"] == pytest.approx([127 / 255] * 3) and config["pixel_std"] == pytest.approx([128 / 255] * 3)
    assert config["pretrained"] is True and "freeze_stages" not in config
    with open(mlflow.pyfunc.get_model_dependencies(logged["info"].model_uri)) as file:
        assert "efficientnet-lite-pytorch==0.1.0" in file.read().split()


def test_the_pretrained_starting_point_is_the_package_weights_with_the_same_preprocessing(logged):
    wrapped = logged["loaded"].unwrap_python_model()
    base = wrapped.pretrained()
    assert (base.image_size, base.channels) == (wrapped.image_size, wrapped.channels)
    reference = logged["spec"].build(pretrained_weights=True).eval()
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(base.embedder.state_dict()[name], value, rtol=0, atol=0)
    images = [_jpeg(np.full((SIZE, SIZE, 3), shade, dtype=np.uint8)) for shade in (30, 200)]
    with torch.inference_mode():
        expected = reference(decode_images(images, SIZE, 3)).numpy()
    np.testing.assert_allclose(base.predict(None, pd.DataFrame({"image": images})), expected, atol=1e-4, rtol=1e-4)
    assert not np.allclose(wrapped.predict(None, pd.DataFrame({"image": images})), expected, atol=1e-4)


def test_a_model_trained_from_scratch_has_no_pretrained_starting_point():
    from flows.mlflow_edge.image_pyfunc import ImageEmbeddingModel

    spec = ImageModelSpec(1, 8, (1,), (8,))
    model = ImageEmbeddingModel().configure(spec.pyfunc_config(), spec.build().state_dict())
    assert model.pretrained() is None
