"""The image protocol on a tiny labelled dataset: 8x8 grayscale PNGs, class 0 bright on the left,
class 1 bright on the right, so any sensible embedding separates them perfectly."""

from __future__ import annotations

import io
import json

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


def _dataset(val_labels: list[int] | None = None, test_labels: list[int] | None = None) -> _Images:
    return _Images({"train": _table([0, 1] * 4, 0), "val": _table(val_labels or [0, 1, 1], 50),
                    "test": _table(test_labels or [1, 0, 0, 1], 100)})


def _mislabelled(labels: list[int]) -> pa.Table:
    """Images drawn as `labels` say, stored under the other label: every prediction is wrong."""
    table = _table(labels, 200)
    return table.set_column(1, "label", pa.array([1 - label for label in labels], pa.int64()))


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


def test_a_version_without_val_rows_fails_saying_how_to_get_them_before_embedding_anything():
    old = _Images({"train": _table([0, 1] * 4, 0), "val": _table([], 0), "test": _table([1, 0], 100)})
    embedded = []

    def embed(images):
        embedded.append(len(images))
        return _halves(images)

    expected = r"toy@v1 has no 'val' rows: the promotion gate .* Ingest the source again .*data.val_fraction"
    with pytest.raises(ValueError, match=expected):
        image_protocol.gate_score(embed, old, CFG)
    with pytest.raises(ValueError, match=expected):
        image_protocol.evaluate_images(_encoder(), old, CFG, ViewsConfig())
    assert embedded == []


def test_image_scores_of_separable_and_of_swapped_labels():
    train_x, test_x = np.array([[1, 0], [0, 1]] * 4, np.float32), np.array([[0, 1], [1, 0]], np.float32)
    train_y = np.array([0, 1] * 4)
    assert image_protocol.image_scores(train_x, train_y, test_x, np.array([1, 0]), CFG) == {
        "knn_top1": 1.0, "linear_probe": 1.0}
    assert image_protocol.image_scores(train_x, train_y, test_x, np.array([0, 1]), CFG) == {
        "knn_top1": 0.0, "linear_probe": 0.0}


def test_split_scores_fits_the_probe_once_and_scores_each_split_with_a_knn_interval(monkeypatch):
    from cl_core.evaluation import linear_probe

    fits = []
    real_fit = linear_probe.fit_linear_probe
    monkeypatch.setattr(image_protocol, "fit_linear_probe", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    train_x, train_y = np.array([[1, 0], [0, 1]] * 4, np.float32), np.array([0, 1] * 4)
    right, wrong = np.array([[0, 1], [1, 0], [1, 0]], np.float32), np.array([[1, 0], [0, 1]], np.float32)
    metrics, intervals = image_protocol.split_scores(
        train_x, train_y, {"val": (right, np.array([1, 0, 0])), "test": (wrong, np.array([1, 0]))}, CFG)
    assert fits == [1]
    assert metrics == {"val": {"knn_top1": 1.0, "linear_probe": 1.0}, "test": {"knn_top1": 0.0, "linear_probe": 0.0}}
    assert sorted(intervals) == ["test", "val"] and list(intervals["val"]) == ["knn_top1"]
    assert (intervals["val"]["knn_top1"].low, intervals["test"]["knn_top1"].high) == (1.0, 0.0)


def test_gate_score_is_knn_top1_on_val_with_its_interval_whatever_test_says():
    good_val = _dataset()
    good_val.tables["test"] = _mislabelled([1, 0, 0, 1])
    score = image_protocol.gate_score(_halves, good_val, CFG)
    assert (score.metric, score.value, score.split) == ("knn_top1", 1.0, "val")
    assert score.value in score.interval and (score.interval.low, score.interval.high) == (1.0, 1.0)

    bad_val = _dataset()
    bad_val.tables["val"] = _mislabelled([0, 1, 1, 0])
    score = image_protocol.gate_score(_halves, bad_val, CFG)
    assert score.value == 0.0 and score.value in score.interval


def test_gate_score_embeds_train_and_val_only():
    seen = []

    def embed(images):
        seen.append(len(images))
        return _halves(images)

    image_protocol.gate_score(embed, _dataset(), CFG)
    assert sorted(seen) == [3, 8]  # val and train; the 4 test images are never embedded


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


def test_evaluate_images_scores_val_and_test_and_the_baselines_on_test():
    steps, embedded = [], []

    def embed(images):
        embedded.append(len(images))
        return _halves(images)

    dataset = _dataset()
    dataset.tables["val"] = _mislabelled([0, 1, 1, 0])  # val all wrong, test all right: each number names its split
    encoder = ImageEncoder(embed=embed, embed_views=_tensor_halves, image_size=SIZE, channels=1, batch_size=3,
                           pretrained=lambda images: _halves(images)[:, ::-1].copy())
    evaluated = image_protocol.evaluate_images(encoder, dataset, CFG, ViewsConfig(),
                                               report=lambda done, total, text: steps.append((done, total, text)))
    assert [step[:2] for step in steps] == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5)]
    assert [step[2] for step in steps[:3]] == [f"embedding the {split} split" for split in ("train", "val", "test")]
    assert steps[4][2] == "the pretrained backbone, before fine-tuning"
    assert embedded == [8, 4, 4]  # train, val, test: once each
    assert evaluated["splits"] == ["val", "test"] and evaluated["primary_metric"] == "knn_top1"
    metrics, baseline = evaluated["metrics"], evaluated["baseline"]
    assert sorted(metrics) == ["test.alignment", "test.knn_top1", "test.linear_probe", "test.uniformity",
                               "val.knn_top1", "val.linear_probe"]
    assert (metrics["val.knn_top1"], metrics["val.linear_probe"]) == (0.0, 0.0)
    assert (metrics["test.knn_top1"], metrics["test.linear_probe"]) == (1.0, 1.0)
    assert evaluated["intervals"] == {"val.knn_top1": [0.0, 0.0], "test.knn_top1": [1.0, 1.0]}
    assert baseline == {"raw_knn_top1": 1.0, "raw_linear_probe": 1.0,
                        "pretrained_knn_top1": 1.0, "pretrained_linear_probe": 1.0}
    assert all(type(value) is float for value in (*metrics.values(), *baseline.values()))
    assert metrics["test.uniformity"] < 0  # log of a mean of exp(-2 t d^2) <= 1
    assert np.asarray(evaluated["map_points"]).shape == (4, 2) and evaluated["test_labels"] == [1, 0, 0, 1]
    json.dumps(evaluated)  # plain JSON: Prefect stores it, --json prints it


def test_evaluate_images_without_a_pretrained_backbone_has_four_steps_and_raw_baselines():
    steps = []
    evaluated = image_protocol.evaluate_images(_encoder(), _dataset(), CFG, ViewsConfig(),
                                               report=lambda done, total, text: steps.append(total))
    assert steps == [4, 4, 4, 4] and sorted(evaluated["baseline"]) == ["raw_knn_top1", "raw_linear_probe"]


def test_the_gate_reads_the_score_evaluate_gives_on_val():
    from cl_core.evaluation.split_scores import GateScore

    dataset = _dataset(val_labels=[0, 1, 1, 0, 1])
    evaluated = image_protocol.evaluate_images(_encoder(), dataset, CFG, ViewsConfig())
    assert GateScore.of(evaluated) == image_protocol.gate_score(_halves, dataset, CFG)


def test_summary_lines_name_the_split_of_each_number():
    evaluated = {
        "splits": ["val", "test"], "primary_metric": "knn_top1",
        "metrics": {"val.knn_top1": 0.98271, "val.linear_probe": 0.97, "test.knn_top1": 0.98958,
                    "test.linear_probe": 0.9635, "test.alignment": 0.5123, "test.uniformity": -3.25},
        "intervals": {"val.knn_top1": [0.9653, 0.9942], "test.knn_top1": [0.9740, 1.0]},
        "baseline": {"raw_knn_top1": 0.99479, "raw_linear_probe": 0.9583},
    }
    assert image_protocol.summary_lines(evaluated) == [
        "  kNN top-1      val 0.9827 [0.965, 0.994]   test 0.9896 [0.974, 1.000]   raw pixels 0.9948 (test)",
        "  linear probe   val 0.9700                  test 0.9635                  raw pixels 0.9583 (test)",
        "  alignment      0.5123   uniformity -3.2500   (test)",
    ]
    evaluated["baseline"] |= {"pretrained_knn_top1": 0.9, "pretrained_linear_probe": 0.8}
    assert image_protocol.summary_lines(evaluated)[0].endswith(
        "test 0.9896 [0.974, 1.000]   pretrained 0.9000   raw pixels 0.9948 (test)")
