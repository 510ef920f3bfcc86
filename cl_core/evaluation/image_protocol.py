"""The image evaluation protocol. A model's embeddings of a labelled dataset's train, val and test
splits are scored by kNN top-1 (the primary metric) and a linear probe: the kNN bank and the
probe's fit are the train split, and both score the validation split (what every decision reads:
the promotion gate, settings chosen in benchmarks) and the test split (reported, never chosen
on; `cl_core.evaluation.split_scores`). kNN top-1 of each split comes with a 95 % bootstrap
interval over its images. Beside them, on the test split only (reported): the same scores on
raw pixels (at most 32x32) and, for a model fine-tuned from pretrained weights, on the backbone
before fine-tuning; alignment of two augmented views of each test image and uniformity of the
test embeddings (Wang & Isola 2020); a 2-D map of the test embeddings.

The model comes in as callables (`ImageEncoder`), so the protocol needs no registry: the
evaluate flow passes a loaded pyfunc's `predict`.

`evaluate`, `gate_score` and `summary_lines` are the entry points every protocol shares (the
record's "protocol" part, `cl_core.modalities`): `embed` first, then what the image model offers
beyond it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch

from cl_core.config import EvalConfig, ViewsConfig
from cl_core.datasets import DatasetVersion, decode_images
from cl_core.evaluation.alignment_uniformity import alignment, uniformity
from cl_core.evaluation.intervals import Interval, mean_interval
from cl_core.evaluation.knn import knn_hits, knn_top1
from cl_core.evaluation.linear_probe import fit_linear_probe
from cl_core.evaluation.primary import primary_metric
from cl_core.evaluation.projection_2d import project_2d
from cl_core.evaluation.split_scores import (
    GATE_SPLIT,
    REPORT_SPLIT,
    SPLITS,
    GateScore,
    metric_lines,
    of_split,
    protocol_result,
)
from cl_core.modalities.image import IMAGE
from cl_core.views import SimCLRViews

RAW_PIXELS_MAX_SIZE = 32  # the raw-pixel baseline's largest side

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
    """(encoded images, int64 labels) of `split`; raises when it is empty or has unlabelled rows
    (a version without validation rows: a message saying how to get them)."""
    table = dataset.read(split=split, columns=["image", "label"])
    if table.num_rows == 0:
        if split == GATE_SPLIT:
            raise ValueError(missing_val_message(dataset))
        raise ValueError(f"dataset {dataset.name}@{dataset.version} has no {split!r} rows to evaluate on")
    if pc.any(pc.is_null(table.column("label"), nan_is_null=True)).as_py():
        raise ValueError(
            f"dataset {dataset.name}@{dataset.version}: the {split!r} split has unlabelled rows; "
            "kNN and the linear probe need labels"
        )
    return table.column("image").to_pylist(), table.column("label").to_numpy(zero_copy_only=False).astype(np.int64)


def missing_val_message(dataset: DatasetVersion) -> str:
    """Why a version without validation rows cannot be evaluated, and how to get one that can."""
    return (
        f"dataset {dataset.name}@{dataset.version} has no {GATE_SPLIT!r} rows: the promotion gate and every "
        f"choice read the validation split, and the {REPORT_SPLIT!r} split is only reported. Ingest the source "
        "again (clpipe ingest SOURCE --name NAME, or clpipe run): a source that names train and test but no "
        "validation split now gets data.val_fraction (default 0.1, must be above 0) of its train rows as val, "
        "chosen by a hash of the row id (docs/steps.md), as a new dataset version"
    )


def _knn_options(cfg: EvalConfig) -> dict[str, Any]:
    return {"k": cfg.knn_k, "temperature": cfg.knn_temperature}


def image_scores(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, cfg: EvalConfig
) -> dict[str, float]:
    """{"knn_top1", "linear_probe"} of test embeddings against train embeddings, without
    intervals: what a baseline reports."""
    return {
        "knn_top1": knn_top1(train_x, train_y, test_x, test_y, **_knn_options(cfg)),
        "linear_probe": fit_linear_probe(train_x, train_y, max_iter=cfg.probe_max_iter).accuracy(test_x, test_y),
    }


def split_scores(train_x: np.ndarray, train_y: np.ndarray, queries: Mapping[str, tuple[np.ndarray, np.ndarray]],
                 cfg: EvalConfig) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Interval]]]:
    """(metrics, intervals) by split of the embeddings `queries` gives per split ((M, D), (M,)):
    kNN top-1 against the train bank (`train_x` (N, D), `train_y` (N,)) with its bootstrap
    interval over the split's images, and the linear probe, fitted once on train."""
    probe = fit_linear_probe(train_x, train_y, max_iter=cfg.probe_max_iter)
    metrics, intervals = {}, {}
    for split, (x, y) in queries.items():
        hits = knn_hits(train_x, train_y, x, y, **_knn_options(cfg))  # (M,)
        metrics[split] = {"knn_top1": float(hits.mean()), "linear_probe": probe.accuracy(x, y)}
        intervals[split] = {"knn_top1": mean_interval(hits)}
    return metrics, intervals


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
    """`split_scores.protocol_result`: metrics "val.<m>" and "test.<m>" for m in "knn_top1",
    "linear_probe", plus "test.alignment" and "test.uniformity"; intervals of kNN top-1 on both
    splits; baselines on the test split, "raw_<score>" and, with a pretrained backbone,
    "pretrained_<score>"; extras "map_points" (the test embeddings' 2-D map) and "test_labels".
    Each split is embedded once. `report` hears each step before it starts.

    Raises:
        ValueError: a split is empty or unlabelled (a version without val rows: how to get one).
    """
    report = report or (lambda done, total, text: None)
    steps = 5 if encoder.pretrained is not None else 4
    # Val first: the split a version ingested before val was carved lacks, so it fails before any embedding.
    labelled = {split: labelled_split(dataset, split) for split in (GATE_SPLIT, "train", REPORT_SPLIT)}
    embedded = {}
    for done, split in enumerate(("train", *SPLITS)):
        report(done, steps, f"embedding the {split} split")
        embedded[split] = encoder.embed(labelled[split][0])
    report(3, steps, "kNN and linear probe")
    train_y = labelled["train"][1]
    metrics, intervals = split_scores(embedded["train"], train_y,
                                      {split: (embedded[split], labelled[split][1]) for split in SPLITS}, cfg)

    (train_images, _), (test_images, test_y) = labelled["train"], labelled[REPORT_SPLIT]
    raw_train_x = raw_pixels(train_images, encoder.image_size, encoder.channels)
    raw_test_x = raw_pixels(test_images, encoder.image_size, encoder.channels)
    baseline = {f"raw_{key}": value for key, value in image_scores(raw_train_x, train_y, raw_test_x, test_y, cfg).items()}
    if encoder.pretrained is not None:
        report(4, steps, "the pretrained backbone, before fine-tuning")
        pretrained = image_scores(encoder.pretrained(train_images), train_y, encoder.pretrained(test_images), test_y, cfg)
        baseline |= {f"pretrained_{key}": value for key, value in pretrained.items()}

    test_x = embedded[REPORT_SPLIT]
    metrics[REPORT_SPLIT]["alignment"] = view_alignment(
        encoder, decode_images(test_images, encoder.image_size, encoder.channels), views_cfg)
    metrics[REPORT_SPLIT]["uniformity"] = uniformity(torch.from_numpy(test_x))
    return protocol_result(
        primary_metric(IMAGE.name), metrics, intervals, baseline,
        map_points=project_2d(test_x, method=cfg.map_method).tolist(), test_labels=test_y.tolist(),
    )


def evaluate(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig, views_cfg: ViewsConfig,
             report: Report | None = None, *, embed_views: Callable[[torch.Tensor], np.ndarray], image_size: int,
             channels: int, batch_size: int, pretrained: Embed | None = None) -> dict[str, Any]:
    """`evaluate_images` of the model `embed` and the keywords describe (`ImageEncoder`'s fields)."""
    encoder = ImageEncoder(embed=embed, embed_views=embed_views, image_size=image_size, channels=channels,
                           batch_size=batch_size, pretrained=pretrained)
    return evaluate_images(encoder, dataset, cfg, views_cfg, report)


def gate_score(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig) -> GateScore:
    """What the promotion gate compares: kNN top-1 of `embed` on the validation split (bank: the
    train split) with its interval; the champion is scored with it on the challenger's version."""
    val_images, val_y = labelled_split(dataset, GATE_SPLIT)
    train_images, train_y = labelled_split(dataset, "train")
    hits = knn_hits(embed(train_images), train_y, embed(val_images), val_y, **_knn_options(cfg))  # (M,)
    return GateScore(primary_metric(IMAGE.name), float(hits.mean()), mean_interval(hits))


def summary_lines(evaluated: Mapping[str, Any]) -> list[str]:
    """What `clpipe run` prints of an evaluation (`evaluate`'s result), each number with its split:
    kNN top-1 (with intervals) and the probe on val and test, next to the test-split baselines
    (the pretrained backbone when the model was fine-tuned from one, the raw pixels), then the
    test split's alignment and uniformity."""
    baseline = evaluated["baseline"]
    lines = metric_lines(evaluated, (("knn_top1", "kNN top-1"), ("linear_probe", "linear probe")),
                         lambda key: {"pretrained": baseline.get(f"pretrained_{key}"), "raw pixels": baseline.get(f"raw_{key}")})
    test = of_split(evaluated["metrics"], REPORT_SPLIT)
    if "alignment" in test and "uniformity" in test:
        lines.append(f"  alignment      {test['alignment']:.4f}   uniformity {test['uniformity']:.4f}   ({REPORT_SPLIT})")
    return lines
