"""Evaluate flow: a registered model (loaded from the registry) on a dataset's evaluation split,
against baselines (images: raw pixels, and the pretrained backbone when it was fine-tuned from
one; text: the pretrained encoder), then the champion/challenger decision on the modality's
primary metric (always the fine-tuned model's score)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric
from prefect import flow, get_run_logger, task

from cl_core.config import EvalConfig, ViewsConfig
from cl_core.datasets import DatasetStore, DatasetVersion, decode_images
from cl_core.evaluation import alignment, knn_top1, linear_probe_accuracy, project_2d, uniformity
from cl_core.views import SimCLRViews
from flows import headline_metrics, plots, progress, recommender_evaluation, registry, text_evaluation, tracking
from flows.promotion_event import emit_promoted
from flows.run_description import PARENT_TAG, STAGE_TAG
from flows.workspace import Workspace

PRIMARY_METRIC = "knn_top1"  # images; text: text_evaluation.primary_metric
RAW_PIXELS_MAX_SIZE = 32  # the raw-pixel baseline's largest side


def _split(dataset: DatasetVersion, split: str) -> tuple[list[bytes], np.ndarray]:
    table = dataset.read(split=split, columns=["image", "label"])
    labels = table.column("label").to_numpy(zero_copy_only=False)
    if table.num_rows == 0:
        raise ValueError(f"dataset {dataset.name}@{dataset.version} has no {split!r} rows to evaluate on")
    if pd.isna(labels).any():
        raise ValueError(
            f"dataset {dataset.name}@{dataset.version}: the {split!r} split has unlabelled rows; "
            "kNN and the linear probe need labels"
        )
    return table.column("image").to_pylist(), labels.astype(np.int64)


def _embed(model: Any, images: list[bytes]) -> np.ndarray:
    return np.asarray(model.predict(pd.DataFrame({"image": images})), dtype=np.float32)


def knn_score(model_ref: str, dataset: DatasetVersion, cfg: EvalConfig) -> float:
    """kNN top-1 of a registered model on `dataset`: the primary metric, alone."""
    model, _ = registry.load_model(registry.ModelRef.parse(model_ref))
    train_images, train_y = _split(dataset, "train")
    test_images, test_y = _split(dataset, "test")
    return knn_top1(_embed(model, train_images), train_y, _embed(model, test_images), test_y,
                    k=cfg.knn_k, temperature=cfg.knn_temperature)


def _scores(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, cfg: EvalConfig
) -> dict[str, float]:
    return {
        "knn_top1": knn_top1(train_x, train_y, test_x, test_y, k=cfg.knn_k, temperature=cfg.knn_temperature),
        "linear_probe": linear_probe_accuracy(train_x, train_y, test_x, test_y, max_iter=cfg.probe_max_iter),
    }


def _alignment(embedder: Any, images: torch.Tensor, views_cfg: dict) -> float:
    """Alignment of the embeddings of two augmented views of each image (N, C, S, S), as in Wang
    & Isola (2020); views are made and embedded a batch at a time, so memory stays flat."""
    views = SimCLRViews(embedder.image_size, embedder.channels, **ViewsConfig.model_validate(views_cfg).model_dump())
    torch.manual_seed(0)
    first, second = [], []
    for start in range(0, images.shape[0], embedder.batch_size):
        view1, view2 = views(images[start : start + embedder.batch_size])
        first.append(torch.from_numpy(embedder.embed_tensor(view1)))
        second.append(torch.from_numpy(embedder.embed_tensor(view2)))
    return alignment(torch.cat(first), torch.cat(second))


@task(name="score-model")
def score_model(
    model_ref: str, datasets_root: str, dataset_name: str, dataset_version: str | None, eval_cfg: dict, views_cfg: dict
) -> dict[str, Any]:
    cfg = EvalConfig.model_validate(eval_cfg)
    model, version = registry.load_model(registry.ModelRef.parse(model_ref))
    embedder = model.unwrap_python_model()
    base = embedder.pretrained()  # None: trained from scratch
    steps = 4 if base is not None else 3
    dataset = DatasetStore(Path(datasets_root)).resolve(dataset_name, dataset_version)
    train_images, train_y = _split(dataset, "train")
    test_images, test_y = _split(dataset, "test")
    progress.report("evaluate", 0, steps, "steps", "embedding the train split")
    train_x = _embed(model, train_images)
    progress.report("evaluate", 1, steps, "steps", "embedding the test split")
    test_x = _embed(model, test_images)
    progress.report("evaluate", 2, steps, "steps", "kNN and linear probe")
    metrics = _scores(train_x, train_y, test_x, test_y, cfg)

    # Raw pixels at most 32x32: larger inputs (a pretrained backbone's 96-224) would make the
    # baseline's vectors, and its linear probe, tens of times larger for no new information.
    raw_size = min(embedder.image_size, RAW_PIXELS_MAX_SIZE)
    raw_train_x = decode_images(train_images, raw_size, embedder.channels).flatten(1).float().numpy() / 255
    raw_test_x = decode_images(test_images, raw_size, embedder.channels).flatten(1).float().numpy() / 255
    baseline = {f"raw_{key}": value for key, value in _scores(raw_train_x, train_y, raw_test_x, test_y, cfg).items()}
    if base is not None:
        progress.report("evaluate", 3, steps, "steps", "the pretrained backbone, before fine-tuning")
        pretrained = _scores(base.predict(None, pd.DataFrame({"image": train_images})), train_y,
                             base.predict(None, pd.DataFrame({"image": test_images})), test_y, cfg)
        baseline |= {f"pretrained_{key}": value for key, value in pretrained.items()}

    metrics["alignment"] = _alignment(embedder, decode_images(test_images, embedder.image_size, embedder.channels),
                                      views_cfg)
    metrics["uniformity"] = uniformity(torch.from_numpy(test_x))
    return {
        "model_name": version.name,
        "model_version": str(version.version),
        "source_run_id": version.run_id,
        "dataset": {"name": dataset.name, "version": dataset.version},
        "split": "test",
        "primary_metric": PRIMARY_METRIC,
        "metrics": {key: float(value) for key, value in metrics.items()},
        "baseline": {key: float(value) for key, value in baseline.items()},
        "map_points": project_2d(test_x, method=cfg.map_method).tolist(),
        "test_labels": test_y.tolist(),
    }


@task(name="score-text-model")
def score_text_model(
    model_ref: str, datasets_root: str, dataset_name: str, dataset_version: str | None, eval_cfg: dict
) -> dict[str, Any]:
    dataset = DatasetStore(Path(datasets_root)).resolve(dataset_name, dataset_version)
    return text_evaluation.score_text(model_ref, dataset, EvalConfig.model_validate(eval_cfg))


@task(name="score-recommender")
def score_recommender_model(
    model_ref: str, datasets_root: str, dataset_name: str, dataset_version: str | None, eval_cfg: dict
) -> dict[str, Any]:
    dataset = DatasetStore(Path(datasets_root)).resolve(dataset_name, dataset_version)
    return recommender_evaluation.score_recommender(model_ref, dataset, EvalConfig.model_validate(eval_cfg))


def champion_score(model_ref: str, dataset: DatasetVersion, cfg: EvalConfig, metric: str) -> float:
    """The champion's value of `metric` on the same dataset version as the challenger."""
    if dataset.kind == "interactions":
        return recommender_evaluation.primary_score(model_ref, dataset)
    if dataset.kind == "text":
        name, value = text_evaluation.primary_score(model_ref, dataset, cfg)
        if name != metric:  # cannot happen on one dataset version: the split decides the metric
            raise ValueError(f"champion {model_ref} was scored on {name}, the challenger on {metric}")
        return value
    return knn_score(model_ref, dataset, cfg)


@task(name="log-evaluation", retries=2, retry_delay_seconds=2)
def log_evaluation(scored: dict[str, Any]) -> str:
    """Log the scores on the training run (its headline columns, overwritten by a later
    evaluation) and in a run of their own nested under it (one per evaluation); returns the
    nested run's id."""
    run_id = scored["source_run_id"]
    name, version = scored["model_name"], scored["model_version"]
    named = headline_metrics.evaluation_metrics(scored["metrics"], scored["baseline"])
    evaluated_on = f"{scored['dataset']['name']}@{scored['dataset']['version']}:{scored['split']}"
    client = MlflowClient()
    training = client.get_run(run_id)
    nested = client.create_run(training.info.experiment_id, run_name=f"evaluate-v{version}", tags={
        PARENT_TAG: run_id, STAGE_TAG: "evaluate", "model.name": name, "model.version": version,
        "eval.dataset": evaluated_on,
    })
    client.log_batch(nested.info.run_id, metrics=[Metric(key, value, int(time.time() * 1000), 0) for key, value in named.items()])
    client.set_terminated(nested.info.run_id, "FINISHED")
    with mlflow.start_run(run_id=run_id), tempfile.TemporaryDirectory() as folder:
        mlflow.log_metrics(named)
        mlflow.set_tag("eval.dataset", evaluated_on)
        if "map_points" in scored:
            points, labels = np.asarray(scored["map_points"]), np.asarray(scored["test_labels"])
            title = f"{name} v{version}: test embeddings"
            map_path = plots.embedding_map(points, labels, title, Path(folder) / "test_embeddings_2d.png")
            mlflow.log_artifact(str(map_path), "evaluation")
        history = tracking.metric_history(run_id, "loss")
        mlflow.log_artifact(str(plots.loss_curve(history, f"{name} v{version}", Path(folder) / "loss_curve.png")), "evaluation")
    for key, value in named.items():
        client.set_model_version_tag(name, version, key, f"{value:.6f}")
    client.set_model_version_tag(name, version, "eval.dataset", evaluated_on)
    return nested.info.run_id


@task(name="promote-if-better", retries=2, retry_delay_seconds=2)
def promote_if_better(scored: dict[str, Any], datasets_root: str, eval_cfg: dict,
                      evaluation_run_id: str | None = None) -> dict[str, Any]:
    """Move `champion` to the evaluated version if there is none or it beats the champion on
    the primary metric (kNN top-1 for images, STS Spearman for scored text pairs, NDCG@10 for
    recommenders), with both
    scored on the same dataset version. The decision is recorded either way."""
    client = MlflowClient()
    name, version = scored["model_name"], scored["model_version"]
    metric = scored["primary_metric"]
    challenger_score = scored["metrics"][metric]
    try:
        champion = client.get_model_version_by_alias(name, registry.CHAMPION)
    except mlflow.exceptions.MlflowException:
        champion = None

    if champion is None:
        promoted, reason = True, f"no champion yet; v{version} {metric}={challenger_score:.4f}"
    elif str(champion.version) == version:
        promoted, reason = False, f"v{version} is already the champion"
    else:
        dataset = DatasetStore(Path(datasets_root)).resolve(scored["dataset"]["name"], scored["dataset"]["version"])
        current = champion_score(f"{name}/{champion.version}", dataset, EvalConfig.model_validate(eval_cfg), metric)
        promoted = challenger_score > current
        verb = "beats" if promoted else "does not beat"
        reason = f"v{version} {metric}={challenger_score:.4f} {verb} champion v{champion.version} {metric}={current:.4f}"
    if promoted:
        client.set_registered_model_alias(name, registry.CHAMPION, version)
        emit_promoted(name, version, str(champion.version) if champion else None, scored["dataset"]["name"],
                      scored["dataset"]["version"])
    decision = "promoted" if promoted else "kept"
    client.set_model_version_tag(name, version, "promotion.decision", f"{decision}: {reason}")
    for run_id in filter(None, (scored["source_run_id"], evaluation_run_id)):
        client.set_tag(run_id, "promotion.decision", f"{decision}: {reason}")
    registry.append_to_description(name, version, f"Evaluated on {scored['dataset']['name']}@"
                                   f"{scored['dataset']['version']} ({scored['split']}): {metric} "
                                   f"{challenger_score:.4f}. Promotion: {decision}: {reason}")
    get_run_logger().info("promotion: %s (%s)", decision, reason)
    return {"promoted": promoted, "reason": reason, "aliases": registry.aliases_of(name, version)}


@flow(name="evaluate")
def evaluate_flow(model_ref: str, dataset_name: str, workspace: str, dataset_version: str | None = None,
                  eval_config: dict | None = None, views_config: dict | None = None) -> dict[str, Any]:
    """Score a registered model on the evaluation split, log it, and gate the champion alias."""
    ws = Workspace(Path(workspace))
    mlflow.set_tracking_uri(ws.tracking_uri)
    eval_cfg = EvalConfig.model_validate(eval_config or {}).model_dump(mode="json")
    views_cfg = ViewsConfig.model_validate(views_config or {}).model_dump(mode="json")
    dataset = DatasetStore(ws.datasets).resolve(dataset_name, dataset_version)
    progress.report("evaluate", 0, None, "steps", f"scoring {model_ref}")
    if dataset.kind == "text":
        scored = score_text_model(model_ref, str(ws.datasets), dataset_name, dataset.version, eval_cfg)
    elif dataset.kind == "interactions":
        scored = score_recommender_model(model_ref, str(ws.datasets), dataset_name, dataset.version, eval_cfg)
    else:
        scored = score_model(model_ref, str(ws.datasets), dataset_name, dataset.version, eval_cfg, views_cfg)
    evaluation_run_id = log_evaluation(scored)
    decision = promote_if_better(scored, str(ws.datasets), eval_cfg, evaluation_run_id)
    progress.finish("evaluate", f"{'promoted' if decision['promoted'] else 'kept'}: {decision['reason']}")
    keys = ("model_name", "model_version", "source_run_id", "dataset", "split", "primary_metric", "metrics", "baseline")
    return {key: scored[key] for key in keys} | {"promotion": decision, "evaluation_run_id": evaluation_run_id}
