"""The image evaluation protocol. A model's embeddings of a labelled dataset's train and test
splits are scored by kNN top-1 (the primary metric) and a linear probe, next to the same scores
on raw pixels (at most 32x32) and, for a model fine-tuned from pretrained weights, on the
backbone before fine-tuning; alignment of two augmented views of each test image and uniformity
of the test embeddings (Wang & Isola 2020); a 2-D map of the test embeddings.

The model comes in as callables (`ImageEncoder`), so the protocol needs no registry: the
evaluate flow passes a loaded pyfunc's `predict`.

`evaluate` and `gate_score` are the entry points every protocol shares (the record's "protocol"
part, `cl_core.modalities`): `embed` first, then what the image model offers beyond it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch

from cl_core.config import EvalConfig, ViewsConfig
from cl_core.datasets import DatasetVersion, decode_images
from cl_core.evaluation.alignment_uniformity import alignment, uniformity
from cl_core.evaluation.knn import knn_top1
from cl_core.evaluation.linear_probe import linear_probe_accuracy
from cl_core.evaluation.primary import primary_metric
from cl_core.evaluation.projection_2d import project_2d
from cl_core.modalities.image import IMAGE
from cl_core.views import SimCLRViews

RAW_PIXELS_MAX_SIZE = 32  # the raw-pixel baseline's largest side
SPLIT = "test"

Embed = Callable[[list[bytes]], np.ndarray]  # encoded images -> (N, D) float32
Report = Callable[[int, int, str], None]  # (steps done, steps in all, what comes next)


@dataclass(frozen=True)
class ImageEncoder:
    """What the protocol needs of the model under test."""

    embed: Embed  # as a registry user calls the model
    embed_views: Callable[[torch.Tensor], np.ndarray]  # decoded images (N, C, S, S) -> (N, D)
    image_size: int
    channels: int
    batch_size: int
    pretrained: Embed | None = None  # the backbone before fine-tuning; None: trained from scratch


def labelled_split(dataset: DatasetVersion, split: str) -> tuple[list[bytes], np.ndarray]:
    """(encoded images, int64 labels) of `split`; raises when it is empty or has unlabelled rows."""
    table = dataset.read(split=split, columns=["image", "label"])
    if table.num_rows == 0:
        raise ValueError(f"dataset {dataset.name}@{dataset.version} has no {split!r} rows to evaluate on")
    if pc.any(pc.is_null(table.column("label"), nan_is_null=True)).as_py():
        raise ValueError(
            f"dataset {dataset.name}@{dataset.version}: the {split!r} split has unlabelled rows; "
            "kNN and the linear probe need labels"
        )
    return table.column("image").to_pylist(), table.column("label").to_numpy(zero_copy_only=False).astype(np.int64)


def image_scores(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, cfg: EvalConfig
) -> dict[str, float]:
    """{"knn_top1", "linear_probe"} of test embeddings against train embeddings."""
    return {
        "knn_top1": knn_top1(train_x, train_y, test_x, test_y, k=cfg.knn_k, temperature=cfg.knn_temperature),
        "linear_probe": linear_probe_accuracy(train_x, train_y, test_x, test_y, max_iter=cfg.probe_max_iter),
    }


def knn_score(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig) -> float:
    """kNN top-1 of `embed` on `dataset`: the primary metric, alone (the champion's side of the gate)."""
    train_images, train_y = labelled_split(dataset, "train")
    test_images, test_y = labelled_split(dataset, SPLIT)
    return knn_top1(embed(train_images), train_y, embed(test_images), test_y, k=cfg.knn_k, temperature=cfg.knn_temperature)


def raw_pixels(images: list[bytes], image_size: int, channels: int) -> np.ndarray:
    """(N, C*S*S) float32 in [0, 1] with S = min(image_size, RAW_PIXELS_MAX_SIZE)."""
    # Raw pixels at most 32x32: larger inputs (a pretrained backbone's 96-224) would make the
    # baseline's vectors, and its linear probe, tens of times larger for no new information.
    size = min(image_size, RAW_PIXELS_MAX_SIZE)
    return decode_images(images, size, channels).flatten(1).float().numpy() / 255


def view_alignment(encoder: ImageEncoder, images: torch.Tensor, views_cfg: ViewsConfig) -> float:
    """Alignment of the embeddings of two augmented views of each image (N, C, S, S), as in Wang
    & Isola (2020); views are made and embedded a batch at a time, so memory stays flat. Seeded:
    the same model and images give the same value."""
    views = SimCLRViews(encoder.image_size, encoder.channels, **views_cfg.model_dump())
    torch.manual_seed(0)
    first, second = [], []
    for start in range(0, images.shape[0], encoder.batch_size):
        view1, view2 = views(images[start : start + encoder.batch_size])
        first.append(torch.from_numpy(encoder.embed_views(view1)))
        second.append(torch.from_numpy(encoder.embed_views(view2)))
    return alignment(torch.cat(first), torch.cat(second))


def evaluate_images(encoder: ImageEncoder, dataset: DatasetVersion, cfg: EvalConfig, views_cfg: ViewsConfig,
                    report: Report | None = None) -> dict[str, Any]:
    """{"split", "primary_metric", "metrics", "baseline", "map_points", "test_labels"}: metrics
    "knn_top1", "linear_probe", "alignment", "uniformity"; baseline "raw_<score>" and, with a
    pretrained backbone, "pretrained_<score>". `report` hears each step before it starts."""
    report = report or (lambda done, total, text: None)
    steps = 4 if encoder.pretrained is not None else 3
    train_images, train_y = labelled_split(dataset, "train")
    test_images, test_y = labelled_split(dataset, SPLIT)
    report(0, steps, "embedding the train split")
    train_x = encoder.embed(train_images)
    report(1, steps, "embedding the test split")
    test_x = encoder.embed(test_images)
    report(2, steps, "kNN and linear probe")
    metrics = image_scores(train_x, train_y, test_x, test_y, cfg)

    raw_train_x = raw_pixels(train_images, encoder.image_size, encoder.channels)
    raw_test_x = raw_pixels(test_images, encoder.image_size, encoder.channels)
    baseline = {f"raw_{key}": value for key, value in image_scores(raw_train_x, train_y, raw_test_x, test_y, cfg).items()}
    if encoder.pretrained is not None:
        report(3, steps, "the pretrained backbone, before fine-tuning")
        pretrained = image_scores(encoder.pretrained(train_images), train_y, encoder.pretrained(test_images), test_y, cfg)
        baseline |= {f"pretrained_{key}": value for key, value in pretrained.items()}

    metrics["alignment"] = view_alignment(
        encoder, decode_images(test_images, encoder.image_size, encoder.channels), views_cfg)
    metrics["uniformity"] = uniformity(torch.from_numpy(test_x))
    return {
        "split": SPLIT,
        "primary_metric": primary_metric(IMAGE.name, metrics),
        "metrics": {key: float(value) for key, value in metrics.items()},
        "baseline": {key: float(value) for key, value in baseline.items()},
        "map_points": project_2d(test_x, method=cfg.map_method).tolist(),
        "test_labels": test_y.tolist(),
    }


def evaluate(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig, views_cfg: ViewsConfig,
             report: Report | None = None, *, embed_views: Callable[[torch.Tensor], np.ndarray], image_size: int,
             channels: int, batch_size: int, pretrained: Embed | None = None) -> dict[str, Any]:
    """`evaluate_images` of the model `embed` and the keywords describe (`ImageEncoder`'s fields)."""
    encoder = ImageEncoder(embed=embed, embed_views=embed_views, image_size=image_size, channels=channels,
                           batch_size=batch_size, pretrained=pretrained)
    return evaluate_images(encoder, dataset, cfg, views_cfg, report)


def gate_score(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig) -> tuple[str, float]:
    """(metric name, value) of the promotion gate: kNN top-1 (`knn_score`)."""
    return primary_metric(IMAGE.name), knn_score(embed, dataset, cfg)


def summary_lines(metrics: dict[str, float], baseline: dict[str, float], split: str) -> list[str]:
    """What `clpipe run` prints of an evaluation: kNN and the probe next to the pretrained backbone
    (when the model was fine-tuned from one) and the raw pixels, then alignment and uniformity."""
    def line(label: str, key: str) -> str:
        before = baseline.get(f"pretrained_{key}")
        pretrained = f"   pretrained {before:.4f}" if before is not None else ""
        return f"  {label:<14} {metrics[key]:.4f}{pretrained}   raw pixels {baseline[f'raw_{key}']:.4f}"

    return [
        line("kNN top-1", "knn_top1"),
        line("linear probe", "linear_probe"),
        f"  alignment      {metrics['alignment']:.4f}   uniformity {metrics['uniformity']:.4f}",
    ]
