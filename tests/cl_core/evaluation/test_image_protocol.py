"""The image protocol on a tiny labelled dataset: 8x8 grayscale PNGs, class 0 bright on the left,
class 1 bright on the right, so any sensible embedding separates them perfectly."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from cl_core.config import EvalConfig, ViewsConfig
from cl_core.evaluation import image_protocol
from cl_core.evaluation.image_protocol import ImageEncoder

SIZE = 8
CFG = EvalConfig(knn_k=3, probe_max_iter=100)


def _png(label: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 40, (SIZE, SIZE)).astype(np.uint8)
    bright = slice(0, SIZE // 2) if label == 0 else slice(SIZE // 2, SIZE)
    pixels[:, bright] += 200
    out = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format="PNG")
    return out.getvalue()


class _Images:
    """The part of a DatasetVersion the protocol reads."""

    name, version, kind = "toy", "v1", "image"

    def __init__(self, tables: dict[str, pa.Table]):
        self.tables = tables

    def read(self, split: str, columns: list[str]) -> pa.Table:
        return self.tables[split].select(columns)


def _table(labels: list[int | None], seed: int) -> pa.Table:
    images = [_png(0 if label is None else label, seed + i) for i, label in enumerate(labels)]
    return pa.table({"image": pa.array(images, pa.binary()), "label": pa.array(labels, pa.int64())})


def _dataset() -> _Images:
    return _Images({"train": _table([0, 1] * 4, 0), "test": _table([1, 0, 0, 1], 100)})


def _halves(images: list[bytes]) -> np.ndarray:
    """(left mean, right mean) of each image, in [0, 1]: a perfect embedding of this data."""
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32) / 255 for data in images])
    return np.stack([pixels[:, :, : SIZE // 2].mean((1, 2)), pixels[:, :, SIZE // 2 :].mean((1, 2))], axis=1)


def _tensor_halves(views: torch.Tensor) -> np.ndarray:
    views = views.float()
    return torch.stack([views[..., : SIZE // 2].mean((1, 2, 3)), views[..., SIZE // 2 :].mean((1, 2, 3))], 1).numpy()


def _encoder(pretrained=None, embed_views=_tensor_halves) -> ImageEncoder:
    return ImageEncoder(embed=_halves, embed_views=embed_views, image_size=SIZE, channels=1, batch_size=3,
                        pretrained=pretrained)


def test_labelled_split_reads_images_and_int_labels():
    images, labels = image_protocol.labelled_split(_dataset(), "test")
    assert len(images) == 4 and images[0].startswith(b"\x89PNG")
    assert labels.dtype == np.int64 and labels.tolist() == [1, 0, 0, 1]


def test_labelled_split_refuses_empty_and_unlabelled_splits():
    empty = _Images({"test": _table([], 0)})
    with pytest.raises(ValueError, match="toy@v1 has no 'test' rows to evaluate on"):
        image_protocol.labelled_split(empty, "test")
    unlabelled = _Images({"test": _table([0, None, 1], 0)})
    with pytest.raises(ValueError, match="the 'test' split has unlabelled rows"):
        image_protocol.labelled_split(unlabelled, "test")


def test_image_scores_of_separable_and_of_swapped_labels():
    train_x, test_x = np.array([[1, 0], [0, 1]] * 4, np.float32), np.array([[0, 1], [1, 0]], np.float32)
    train_y = np.array([0, 1] * 4)
    assert image_protocol.image_scores(train_x, train_y, test_x, np.array([1, 0]), CFG) == {
        "knn_top1": 1.0, "linear_probe": 1.0}
    assert image_protocol.image_scores(train_x, train_y, test_x, np.array([0, 1]), CFG) == {
        "knn_top1": 0.0, "linear_probe": 0.0}


def test_knn_score_is_the_primary_metric_alone():
    assert image_protocol.knn_score(_halves, _dataset(), CFG) == 1.0


def test_raw_pixels_are_at_most_32_pixels_a_side_in_0_1():
    white = io.BytesIO()
    Image.fromarray(np.full((64, 64), 255, np.uint8), mode="L").save(white, format="PNG")
    raw = image_protocol.raw_pixels([white.getvalue()] * 2, image_size=64, channels=1)
    assert raw.shape == (2, 32 * 32) and raw.dtype == np.float32 and np.all(raw == 1.0)
    assert image_protocol.raw_pixels([_png(0, 0)], image_size=SIZE, channels=3).shape == (1, 3 * SIZE * SIZE)


def test_view_alignment_is_zero_for_a_constant_embedding_and_seeded():
    images = torch.from_numpy(np.stack([np.asarray(Image.open(io.BytesIO(_png(i % 2, i))))[None] for i in range(5)]))
    constant = _encoder(embed_views=lambda views: np.ones((views.shape[0], 2), np.float32))
    assert image_protocol.view_alignment(constant, images, ViewsConfig()) == pytest.approx(0.0, abs=1e-6)
    first = image_protocol.view_alignment(_encoder(), images, ViewsConfig())
    assert 0.0 < first < 4.0 and image_protocol.view_alignment(_encoder(), images, ViewsConfig()) == first


def test_evaluate_images_scores_the_model_and_its_baselines():
    steps = []
    evaluated = image_protocol.evaluate_images(
        _encoder(pretrained=lambda images: _halves(images)[:, ::-1].copy()), _dataset(), CFG, ViewsConfig(),
        report=lambda done, total, text: steps.append((done, total, text)))
    assert [step[:2] for step in steps] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert steps[3][2] == "the pretrained backbone, before fine-tuning"
    assert evaluated["split"] == "test" and evaluated["primary_metric"] == "knn_top1"
    metrics, baseline = evaluated["metrics"], evaluated["baseline"]
    assert sorted(metrics) == ["alignment", "knn_top1", "linear_probe", "uniformity"]
    assert metrics["knn_top1"] == 1.0 and metrics["linear_probe"] == 1.0
    assert baseline == {"raw_knn_top1": 1.0, "raw_linear_probe": 1.0,
                        "pretrained_knn_top1": 1.0, "pretrained_linear_probe": 1.0}
    assert all(type(value) is float for value in (*metrics.values(), *baseline.values()))
    assert metrics["uniformity"] < 0  # log of a mean of exp(-2 t d^2) <= 1
    assert np.asarray(evaluated["map_points"]).shape == (4, 2) and evaluated["test_labels"] == [1, 0, 0, 1]


def test_evaluate_images_without_a_pretrained_backbone_has_three_steps_and_raw_baselines():
    steps = []
    evaluated = image_protocol.evaluate_images(_encoder(), _dataset(), CFG, ViewsConfig(),
                                               report=lambda done, total, text: steps.append(total))
    assert steps == [3, 3, 3] and sorted(evaluated["baseline"]) == ["raw_knn_top1", "raw_linear_probe"]
