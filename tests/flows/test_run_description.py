"""Names, descriptions, tags and headline metric names that make training runs comparable."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cl_core.config import load_config
from flows import run_description
from flows.mlflow_edge import headline_metrics
from flows.prefect_edge import run_links


def test_run_name_is_objective_dataset_and_utc_time():
    config = load_config(None, {"loss.name": "dcl"})
    local = datetime(2025, 1, 2, 14, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    assert run_description.training_run_name(config, "digits", local) == "dcl-digits-20250102-123005"
    assert run_description.training_run_name(config, "digits").startswith("dcl-digits-20")


def test_image_tags_name_the_backbone_dataset_and_links():
    config = load_config(None, {"model.depths": [1, 2], "model.widths": [16, 32], "train.epochs": 3})
    tags = run_description.training_tags(config, "digits", "abc123", "f-1", "http://p/runs/flow-run/f-1", "deadbeef")
    assert {key: tags[key] for key in ("clpipe.stage", "objective", "modality", "backbone", "dataset.name",
                                       "dataset.version", "prefect.flow_run_id", "prefect.flow_run_url",
                                       "git.commit")} == {
        "clpipe.stage": "train", "objective": "ntxent", "modality": "image", "backbone": "resnet-d1-2-w16-32",
        "dataset.name": "digits", "dataset.version": "abc123", "prefect.flow_run_id": "f-1",
        "prefect.flow_run_url": "http://p/runs/flow-run/f-1", "git.commit": "deadbeef",
    }
    note = tags["mlflow.note.content"]
    for part in ("**ntxent**", "digits@abc123", "resnet-d1-2-w16-32", "epochs 3", "global batch 256", "lr 0.002"):
        assert part in note, part


@pytest.mark.parametrize("pretrained,backbone", [(None, "efficientnet-lite0-pretrained"), (False, "efficientnet-lite0-scratch")])
def test_a_pretrained_backbone_is_named_with_where_it_started_and_its_fine_tuning_controls(pretrained, backbone):
    config = load_config(None, {"model.backbone": "efficientnet-lite0", "model.pretrained": pretrained,
                                "data.image_size": 64, "train.backbone_lr_mult": 0.1})
    tags = run_description.training_tags(config, "cifar10", "v1", None, None, None)
    assert tags["backbone"] == backbone
    controls = "fine-tuning: freeze_stages 0, freeze_bn false, backbone lr x0.1, image size 64"
    assert (controls in tags["mlflow.note.content"]) == (pretrained is None)


def test_text_tags_name_the_encoder_and_leave_unknown_links_out():
    config = load_config(None, {"data.modality": "text", "loss.name": "mnrl"})
    tags = run_description.training_tags(config, "faq", "v1", None, None, None)
    assert tags["encoder"] == config.model.text_encoder and "backbone" not in tags
    assert not {"prefect.flow_run_id", "prefect.flow_run_url", "git.commit"} & set(tags)
    assert "text encoder: " in tags["mlflow.note.content"]


def test_git_commit_of_the_checkout_and_none_outside_one(tmp_path):
    commit = run_description.git_commit()
    assert commit is None or len(commit) == 40
    assert run_description.git_commit(tmp_path) is None


def test_evaluation_metrics_get_stable_names():
    named = headline_metrics.evaluation_metrics(
        {"val.knn_top1": 0.9, "val.linear_probe": 0.8, "test.knn_top1": 0.85, "test.linear_probe": 0.75},
        {"raw_knn_top1": 0.7, "raw_linear_probe": 0.6}, {"val.knn_top1": [0.88, 0.92]})
    assert named == {"eval.val.knn_top1": 0.9, "eval.val.linear_probe": 0.8, "eval.test.knn_top1": 0.85,
                     "eval.test.linear_probe": 0.75, "eval.knn_top1": 0.85, "eval.linear_probe": 0.75,
                     "eval.val.knn_top1.ci_low": 0.88, "eval.val.knn_top1.ci_high": 0.92,
                     "eval.baseline.knn_top1": 0.7, "eval.baseline.linear_probe": 0.6}
    # Text without a test split: the old name is val's, as it was before.
    text = headline_metrics.evaluation_metrics({"val.sts_spearman": 0.8}, {"pretrained_sts_spearman": 0.7})
    assert text == {"eval.val.sts_spearman": 0.8, "eval.sts_spearman": 0.8, "eval.pretrained.sts_spearman": 0.7}
    finetuned = headline_metrics.evaluation_metrics({"test.knn_top1": 0.9}, {"raw_knn_top1": 0.4, "pretrained_knn_top1": 0.8})
    assert finetuned == {"eval.test.knn_top1": 0.9, "eval.knn_top1": 0.9, "eval.baseline.knn_top1": 0.4,
                         "eval.pretrained.knn_top1": 0.8}
    assert {"eval.pretrained.knn_top1", "eval.pretrained.linear_probe", "eval.val.knn_top1",
            "eval.test.knn_top1"} <= set(headline_metrics.COLUMNS)
    assert headline_metrics.LEGACY["eval.knn_top1"] == "eval.test.knn_top1"
    assert all(new.startswith("eval.test.") for new in headline_metrics.LEGACY.values())
    with pytest.raises(ValueError, match="prefixes"):
        headline_metrics.evaluation_metrics({}, {"other": 1.0})


def test_training_metrics_and_primary_metric():
    assert headline_metrics.training_metrics(12.5, [100.0, 300.0]) == {"train.seconds": 12.5, "train.samples_per_s": 200.0}
    assert headline_metrics.training_metrics(1.0, []) == {"train.seconds": 1.0}
    # compare sorts by the gate's metric, on the validation split
    assert headline_metrics.primary_metric(["image"], ["eval.val.knn_top1", "eval.test.knn_top1"]) == "eval.val.knn_top1"
    assert headline_metrics.primary_metric(["text"], ["eval.val.sts_spearman"]) == "eval.val.sts_spearman"
    assert headline_metrics.primary_metric(["text"], ["eval.val.mrr_at_10"]) == "eval.val.mrr_at_10"


def test_mlflow_run_url_only_for_a_server():
    assert run_links.mlflow_run_url("http://127.0.0.1:5000/", "3", "r1") == "http://127.0.0.1:5000/#/experiments/3/runs/r1"
    assert run_links.mlflow_run_url("sqlite:////w/mlflow.db", "3", "r1") is None


def test_prefect_flow_run_url_from_the_ui_setting(monkeypatch):
    from prefect.settings import PREFECT_UI_URL, temporary_settings

    monkeypatch.setattr(run_links.flow_run, "id", "abc", raising=False)
    with temporary_settings({PREFECT_UI_URL: "http://127.0.0.1:4200"}):
        assert run_links.prefect_flow_run() == ("abc", "http://127.0.0.1:4200/runs/flow-run/abc")
