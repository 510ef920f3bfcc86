"""Evaluate flow: a registered model (loaded from the registry) on a dataset's validation and
test splits, against baselines (images: raw pixels, and the pretrained backbone when it was
fine-tuned from one; text: the pretrained encoder; recommenders: most-popular and BPR-MF), then
the champion/challenger decision on the modality's primary metric on the validation split
(always the fine-tuned model's score). The test split is scored once per model version and
dataset version and only reported: no decision reads it."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag
from prefect import flow, get_run_logger, task
from prefect.exceptions import MissingContextError

from cl_core.config import EvalConfig, RegistryConfig, ViewsConfig
from cl_core.datasets import DatasetStore, DatasetVersion
from cl_core.evaluation.primary import PRIMARY_METRICS
from cl_core.evaluation.split_scores import GateScore, interval_of, split_key
from cl_core.evaluation.version_order import check_version_order
from cl_core.modalities import modality
from flows import plots
from flows.mlflow_edge import headline_metrics, pyfuncs, registry, tracking
from flows.mlflow_edge.registry_errors import is_not_found
from flows.prefect_edge import progress
from flows.prefect_edge.promotion_event import emit_promoted
from flows.run_description import PARENT_TAG, RUN_ID, STAGE_TAG
from flows.scored import scored_result
from flows.workspace import Workspace


def _scorer(model_ref: str, dataset: DatasetVersion, store: DatasetStore) -> tuple[Any, Any, Any, pyfuncs.Embed]:
    """(the loaded pyfunc, its ModelVersion, the protocol of `dataset`'s modality, the model's
    embed function over that modality's inputs). Raises `OlderVersionError` when the model trained
    on a version of time-split data newer than `dataset` (`check_version_order`)."""
    model, version = registry.load_model(registry.ModelRef.parse(model_ref))
    trained_on = (version.tags or {}).get("dataset.name"), (version.tags or {}).get("dataset.version")
    if all(trained_on):  # a version registered without them (by hand) has no order to check
        check_version_order(store, *trained_on, dataset)
    return model, version, modality(dataset.kind).part("protocol"), pyfuncs.embedder(model, dataset.kind)


@task(name="score-model")
def score_model(
    model_ref: str, datasets_root: str, dataset_name: str, dataset_version: str | None, eval_cfg: EvalConfig,
    views_cfg: ViewsConfig,
) -> dict[str, Any]:
    """The dataset's modality's protocol (`evaluate`) on the registered model, with what its
    pyfunc offers beyond `embed` (`pyfuncs.Pyfunc.protocol_inputs`: baselines, views)."""
    store = DatasetStore(Path(datasets_root))
    dataset = store.resolve(dataset_name, dataset_version)
    model, version, protocol, embed = _scorer(model_ref, dataset, store)
    entry = pyfuncs.pyfunc(dataset.kind)
    evaluated = protocol.evaluate(
        embed, dataset, eval_cfg, views_cfg,
        report=lambda done, total, text: progress.report("evaluate", done, total, "steps", text),
        **entry.protocol_inputs(model.unwrap_python_model(), entry))
    return scored_result(version, dataset, evaluated)


def champion_score(model_ref: str, dataset: DatasetVersion, store: DatasetStore, cfg: EvalConfig,
                   metric: str) -> GateScore:
    """The champion's value of `metric` on the validation split of the same dataset version as
    the challenger, with its interval. A champion trained on a newer version of time-split data
    cannot be scored on it (`OlderVersionError`): the challenger must be scored on that version or later."""
    _, _, protocol, embed = _scorer(model_ref, dataset, store)
    score = protocol.gate_score(embed, dataset, cfg)
    if score.metric != metric:  # cannot happen on one dataset version: the split decides the metric
        raise ValueError(f"champion {model_ref} was scored on {score.metric}, the challenger on {metric}")
    return score


EVALUATION_KEY_TAG = "clpipe.evaluation"  # model/version on dataset@version:split: one run per key
DECISION_TAG = "promotion.decision"  # "promoted: reason" or "kept: reason"
PREVIOUS_TAG = "promotion.previous_champion"  # the champion's version when the decision was taken
ANNOUNCED_TAG = "promotion.announced"  # set once the promotion event went out
NO_CHAMPION = "none"


def evaluated_on(scored: dict[str, Any]) -> str:
    """"NAME@VERSION:val+test": the dataset version and the splits scored."""
    return f"{scored['dataset']['name']}@{scored['dataset']['version']}:{'+'.join(scored['splits'])}"


def evaluation_key(scored: dict[str, Any]) -> str:
    return f"{scored['model_name']}/{scored['model_version']} on {evaluated_on(scored)}"


def _logger() -> Any:
    try:
        return get_run_logger()
    except MissingContextError:  # called outside a flow (tests, scripts)
        return logging.getLogger(__name__)


def _evaluation_run(client: MlflowClient, experiment_id: str, training_run_id: str, key: str) -> Any | None:
    """The evaluation run of `key` under the training run, if an earlier attempt created it."""
    # A run id is [A-Za-z0-9_-] (MLflow's own rule, checked again here), so this filter holds no
    # user text; the key, which holds the model name, is compared here rather than in the filter.
    if not RUN_ID.fullmatch(training_run_id):
        raise ValueError(f"training run id {training_run_id!r} is not an MLflow run id")
    runs = client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '{training_run_id}' and "
                              f"tags.`{STAGE_TAG}` = 'evaluate'", max_results=1000, order_by=["attributes.start_time ASC"])
    return next((run for run in runs if run.data.tags.get(EVALUATION_KEY_TAG) == key), None)


def record_evaluation(scored: dict[str, Any]) -> str:
    """Log the scores on the training run (its headline columns, overwritten by a later
    evaluation) and in a run of their own nested under it, one per model version, dataset
    version and split (a retry finds and reuses the run an earlier attempt created); returns
    the nested run's id."""
    run_id = scored["source_run_id"]
    name, version = scored["model_name"], scored["model_version"]
    named = headline_metrics.evaluation_metrics(scored["metrics"], scored["baseline"], scored["intervals"])
    dataset_tag = evaluated_on(scored)
    key = evaluation_key(scored)
    client = MlflowClient()
    training = client.get_run(run_id)
    nested = _evaluation_run(client, training.info.experiment_id, run_id, key)
    if nested is None:
        nested = client.create_run(training.info.experiment_id, run_name=f"evaluate-v{version}", tags={
            PARENT_TAG: run_id, STAGE_TAG: "evaluate", "model.name": name, "model.version": version,
            "eval.dataset": dataset_tag, EVALUATION_KEY_TAG: key,
        })
    if nested.info.status != "FINISHED":  # an earlier attempt logged the scores already
        client.log_batch(nested.info.run_id, metrics=[Metric(k, v, int(time.time() * 1000), 0) for k, v in named.items()])
        client.set_terminated(nested.info.run_id, "FINISHED")
    with mlflow.start_run(run_id=run_id), tempfile.TemporaryDirectory() as folder:
        mlflow.log_metrics(named)
        mlflow.set_tag("eval.dataset", dataset_tag)
        if "map_points" in scored:
            points, labels = np.asarray(scored["map_points"]), np.asarray(scored["test_labels"])
            title = f"{name} v{version}: test embeddings"
            map_path = plots.embedding_map(points, labels, title, Path(folder) / "test_embeddings_2d.png")
            mlflow.log_artifact(str(map_path), "evaluation")
        history = tracking.metric_history(run_id, "loss")
        mlflow.log_artifact(str(plots.loss_curve(history, f"{name} v{version}", Path(folder) / "loss_curve.png")), "evaluation")
    for key_, value in named.items():
        client.set_model_version_tag(name, version, key_, f"{value:.6f}")
    client.set_model_version_tag(name, version, "eval.dataset", dataset_tag)
    return nested.info.run_id


@task(name="log-evaluation", retries=2, retry_delay_seconds=2)
def log_evaluation(scored: dict[str, Any]) -> str:
    """`record_evaluation` as a task: retried, it reuses the evaluation run."""
    return record_evaluation(scored)


def _champion(client: MlflowClient, name: str) -> Any | None:
    """The `champion` ModelVersion, or None when the registry says there is none. Any other
    registry error (a tracking server's 5xx, a refusal) is raised: it says nothing about the
    champion, and taking it for "none" would promote the challenger unopposed."""
    try:
        return client.get_model_version_by_alias(name, registry.CHAMPION)
    except mlflow.exceptions.MlflowException as error:
        if is_not_found(error):
            return None
        raise


def _decide(client: MlflowClient, scored: dict[str, Any], datasets_root: str, eval_cfg: EvalConfig,
            min_improvement: float) -> tuple[str, str, str]:
    """(decision, reason, previous champion version or NO_CHAMPION), on the registry's facts
    and the validation split: the challenger's score from its evaluation, the champion's scored
    now on the same dataset version."""
    name, version = scored["model_name"], scored["model_version"]
    challenger = GateScore.of(scored)
    champion = _champion(client, name)
    if champion is None:
        return "promoted", f"no champion yet; v{version} {challenger}", NO_CHAMPION
    if str(champion.version) == version:
        return "kept", f"v{version} is already the champion", str(champion.version)
    store = DatasetStore(Path(datasets_root))
    dataset = store.resolve(scored["dataset"]["name"], scored["dataset"]["version"])
    current = champion_score(f"{name}/{champion.version}", dataset, store, eval_cfg, challenger.metric)
    promoted = PRIMARY_METRICS[dataset.kind].beats(challenger.value, current.value, min_improvement)
    verb = "beats" if promoted else "does not beat"
    margin = f" by at least {min_improvement:g} (registry.min_improvement)" if min_improvement > 0 else ""
    reason = f"v{version} {challenger} {verb} champion v{champion.version} {current}{margin}"
    return ("promoted" if promoted else "kept"), reason, str(champion.version)


def decide_promotion(scored: dict[str, Any], datasets_root: str, eval_cfg: EvalConfig, evaluation_run_id: str | None = None,
                     announce: Callable[..., Any] = emit_promoted, min_improvement: float = 0.0) -> dict[str, Any]:
    """Move `champion` to the evaluated version if there is none or it beats the champion on
    the primary metric (kNN top-1 for images, STS Spearman for scored text pairs, NDCG@10 for
    recommenders) of the validation split by at least `min_improvement` (0: strictly), with
    both scored on the same dataset version. The test split plays no part.

    The decision is taken once per evaluation run: it is recorded on that run (with the
    champion it was taken against) before the alias moves, then on the model version and the
    training run. An attempt that finds it recorded (a retry after a partial failure) does not
    decide again: it finishes what the record says (moves the alias if it still points where it
    did, announces a promotion not yet announced) and says so in `note`. `announce` sends the
    promotion event (`emit_promoted`)."""
    client = MlflowClient()
    log = _logger()
    name, version = scored["model_name"], scored["model_version"]
    recorded = client.get_run(evaluation_run_id).data.tags if evaluation_run_id else {}
    notes = []
    if DECISION_TAG in recorded:
        decision, reason = recorded[DECISION_TAG].split(": ", 1)
        previous = recorded.get(PREVIOUS_TAG, NO_CHAMPION)
        notes.append(f"decision recorded by an earlier attempt of this evaluation ({evaluation_run_id})")
    else:
        decision, reason, previous = _decide(client, scored, datasets_root, eval_cfg, min_improvement)
        if evaluation_run_id:  # the record a retry goes by, before anything moves
            client.log_batch(evaluation_run_id, tags=[RunTag(DECISION_TAG, f"{decision}: {reason}"),
                                                      RunTag(PREVIOUS_TAG, previous)])
    promoted = decision == "promoted"
    for run_id in filter(None, (scored["source_run_id"], evaluation_run_id)):
        client.set_tag(run_id, DECISION_TAG, f"{decision}: {reason}")
    client.set_model_version_tag(name, version, DECISION_TAG, f"{decision}: {reason}")

    if promoted:
        champion = _champion(client, name)
        now = str(champion.version) if champion else NO_CHAMPION
        if now == previous:  # still where it was when the decision was taken
            client.set_registered_model_alias(name, registry.CHAMPION, version)
            if notes:
                notes.append(f"champion had not moved yet: moved to v{version} now")
        elif now == version:
            if notes:
                notes.append(f"v{version} is champion already")
        else:  # moved by someone else since: that is theirs to keep
            notes.append(f"champion has moved since, to v{now}; left there")
        if now in (previous, version) and recorded.get(ANNOUNCED_TAG) != "true":
            sent = announce(name, version, None if previous == NO_CHAMPION else previous, scored["dataset"]["name"],
                            scored["dataset"]["version"])
            if evaluation_run_id:
                client.set_tag(evaluation_run_id, ANNOUNCED_TAG, "true" if sent is not None else "lost")
            if notes:
                notes.append("promotion announced now")

    paragraph = f"Evaluated on {evaluated_on(scored)}: {primary_values(scored)}. Promotion: {decision}: {reason}"
    if paragraph not in (client.get_model_version(name, version).description or ""):
        registry.append_to_description(name, version, paragraph)
    note = "; ".join(notes) or None
    log.info("promotion: %s (%s)%s", decision, reason, f" [{note}]" if note else "")
    return {"promoted": promoted, "reason": reason, "earlier": bool(notes), "note": note,
            "aliases": registry.aliases_of(name, version)}


def primary_values(scored: dict[str, Any]) -> str:
    """"val knn_top1 0.9827 [0.9653, 0.9942], test knn_top1 0.9896 [...]": the primary metric on each split scored."""
    metric, values = scored["primary_metric"], []
    for split in scored["splits"]:
        interval = interval_of(scored, split, metric)
        value = scored["metrics"][split_key(split, metric)]
        values.append(f"{split} {metric} {value:.4f}" + (f" {interval}" if interval is not None else ""))
    return ", ".join(values)


@task(name="promote-if-better", retries=2, retry_delay_seconds=2)
def promote_if_better(scored: dict[str, Any], datasets_root: str, eval_cfg: EvalConfig,
                      evaluation_run_id: str | None = None, min_improvement: float = 0.0) -> dict[str, Any]:
    """`decide_promotion` as a task: retried, it finishes the recorded decision."""
    return decide_promotion(scored, datasets_root, eval_cfg, evaluation_run_id, min_improvement=min_improvement)


@flow(name="evaluate")
def evaluate_flow(model_ref: str, dataset_name: str, workspace: str, dataset_version: str | None = None,
                  eval_config: EvalConfig = EvalConfig(), views_config: ViewsConfig = ViewsConfig(),
                  registry_config: RegistryConfig = RegistryConfig()) -> dict[str, Any]:
    """Score a registered model on the validation and test splits, log both, and gate the
    champion alias on validation. `eval_config`, `views_config` and `registry_config` are the run
    config's validated `eval`, `views` and `registry` sections (the gate's margin:
    `registry.min_improvement`)."""
    ws = Workspace(Path(workspace))
    mlflow.set_tracking_uri(ws.tracking_uri)
    eval_cfg, views_cfg = eval_config, views_config
    dataset = DatasetStore(ws.datasets).resolve(dataset_name, dataset_version)
    progress.report("evaluate", 0, None, "steps", f"scoring {model_ref}")
    scored = score_model(model_ref, str(ws.datasets), dataset_name, dataset.version, eval_cfg, views_cfg)
    evaluation_run_id = log_evaluation(scored)
    decision = promote_if_better(scored, str(ws.datasets), eval_cfg, evaluation_run_id, registry_config.min_improvement)
    progress.finish("evaluate", f"{'promoted' if decision['promoted'] else 'kept'}: {decision['reason']}"
                    + (f" ({decision['note']})" if decision["note"] else ""))
    keys = ("model_name", "model_version", "source_run_id", "dataset", "modality", "splits", "primary_metric", "metrics",
            "intervals", "baseline")
    return {key: scored[key] for key in keys} | {"promotion": decision, "evaluation_run_id": evaluation_run_id}
