"""End to end: `clpipe run` with real Ray (2 workers), real Prefect, real MLflow, real Parquet (the session's
one run, `digits_run` in tests/conftest.py)."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from mlflow import MlflowClient

from cl_core.datasets import DatasetStore
from cl_core.embeddings import open_current
from flows.cli import _print_run_summary
from flows.workspace import Workspace
from tests.conftest import CLI_SERVICES, DIGITS_RUN_CONFIG, DIGITS_RUN_EPOCHS, LOSING_CHALLENGER, clpipe_together, last_json

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EPOCHS = DIGITS_RUN_EPOCHS


@pytest.fixture(scope="module")
def pipeline(digits_run):
    """The session's `clpipe run` on 500 digits (tests/conftest.py), read through MLflow."""
    mlflow.set_tracking_uri(f"sqlite:///{digits_run.workspace / 'mlflow.db'}")
    yield {"summary": digits_run.summary, "workspace": digits_run.workspace, "config": digits_run.config}
    mlflow.set_tracking_uri(None)


def test_registry_holds_a_champion_version(pipeline):
    train = pipeline["summary"]["train"]
    version = MlflowClient().get_model_version_by_alias(train["model_name"], "champion")
    assert str(version.version) == train["model_version"] == "1"
    assert set(version.aliases) == {"champion", "challenger"}
    assert version.run_id == train["run_id"]
    assert version.tags["promotion.decision"].startswith("promoted: no champion yet")


def test_run_holds_per_epoch_metrics_params_lineage_and_evaluation(pipeline):
    summary = pipeline["summary"]
    client = MlflowClient()
    run = client.get_run(summary["train"]["run_id"])
    assert run.info.status == "FINISHED"
    for key in ("loss", "lr", "samples_per_s"):
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in history) == list(range(EPOCHS)), key
    assert run.data.params["train.epochs"] == str(EPOCHS)
    assert run.data.params["loss.temperature"] == "0.2"
    dataset = summary["ingest"]
    assert run.data.tags["dataset.version"] == dataset["version"]
    assert [d.dataset.digest for d in run.inputs.dataset_inputs] == [dataset["version"]]
    evaluated = summary["evaluate"]
    assert evaluated["splits"] == ["val", "test"]
    for key in ("val.knn_top1", "val.linear_probe", "test.knn_top1", "test.linear_probe", "test.alignment",
                "test.uniformity"):
        assert 0 <= abs(run.data.metrics[f"eval.{key}"]) < 10
        assert run.data.metrics[f"eval.{key}"] == pytest.approx(evaluated["metrics"][key])
    for split in ("val", "test"):  # the gate's metric with its interval, on each split
        low, high = (run.data.metrics[f"eval.{split}.knn_top1.{end}"] for end in ("ci_low", "ci_high"))
        assert [low, high] == pytest.approx(evaluated["intervals"][f"{split}.knn_top1"])
        assert low <= evaluated["metrics"][f"{split}.knn_top1"] <= high
    assert run.data.metrics["eval.knn_top1"] == run.data.metrics["eval.test.knn_top1"]  # the old name, for one release
    for key in ("knn_top1", "linear_probe"):
        assert run.data.metrics[f"eval.baseline.{key}"] == pytest.approx(evaluated["baseline"][f"raw_{key}"])
    # The encoder learned something: far better than chance (10 classes) after two tiny epochs.
    assert run.data.metrics["eval.val.linear_probe"] > 0.3
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert artifacts == {"evaluation/test_embeddings_2d.png", "evaluation/loss_curve.png"}


def test_training_run_is_named_described_tagged_and_parents_its_evaluation_and_table_write(pipeline):
    summary = pipeline["summary"]
    client = MlflowClient()
    run = client.get_run(summary["train"]["run_id"])
    tags = run.data.tags
    assert re.fullmatch(r"ntxent-digits-\d{8}-\d{6}", run.info.run_name)
    assert tags["objective"] == "ntxent" and tags["backbone"] == "resnet-d1-1-w16-32"
    assert (tags["dataset.name"], tags["dataset.version"]) == ("digits", summary["ingest"]["version"])
    assert f"epochs {EPOCHS}, global batch 64" in tags["mlflow.note.content"]
    assert len(tags["git.commit"]) == 40
    flow_run_id = tags["prefect.flow_run_id"]
    assert tags["prefect.flow_run_url"].endswith(f"/runs/flow-run/{flow_run_id}")
    assert run.data.metrics["train.seconds"] > 0 and run.data.metrics["train.samples_per_s"] > 0
    for child_id, stage in ((summary["evaluate"]["evaluation_run_id"], "evaluate"),
                            (summary["reembed"]["mlflow_run_id"], "reembed")):
        child = client.get_run(child_id)
        assert child.data.tags["mlflow.parentRunId"] == run.info.run_id
        assert child.data.tags["clpipe.stage"] == stage
    assert client.get_run(summary["evaluate"]["evaluation_run_id"]).data.metrics["eval.val.knn_top1"] == (
        run.data.metrics["eval.val.knn_top1"])
    version = client.get_model_version(summary["train"]["model_name"], summary["train"]["model_version"])
    assert "**ntxent** on **digits@" in version.description and "Promotion: promoted" in version.description
    assert float(version.tags["eval.val.knn_top1"]) == pytest.approx(run.data.metrics["eval.val.knn_top1"], abs=1e-6)
    assert version.tags["dataset.version"] == summary["ingest"]["version"]


def test_prefect_flow_run_links_to_its_mlflow_run(pipeline):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    run = MlflowClient().get_run(pipeline["summary"]["train"]["run_id"])
    flow_run_id = run.data.tags["prefect.flow_run_id"]
    server = CLI_SERVICES.environment(keep=set())["PREFECT_API_URL"]  # the server `clpipe run` used
    with temporary_settings({PREFECT_API_URL: server}), get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    assert any(run.info.run_id in str(artifact.data) for artifact in artifacts)


def test_embedding_table_has_one_row_per_dataset_row(pipeline):
    summary, workspace = pipeline["summary"], pipeline["workspace"]
    written = summary["reembed"]  # the run ends with reembed's decision, not a full export
    table = open_current(workspace / "embeddings", "digits-ntxent", "digits").to_table()
    assert written["action"] == "backfill"  # its model was promoted (the first champion): every row embedded
    assert (Path(written["table_path"]) / "CURRENT").read_text().strip() == written["snapshot"]
    assert written["rows"] == written["rows_embedded"] == 500 and written["model_version"] == "1"
    dataset = DatasetStore(workspace / "datasets").resolve("digits", summary["ingest"]["version"])
    assert table.num_rows == dataset.num_rows() == summary["ingest"]["rows"] == 500
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 32)
    assert sorted(table.column("id").to_pylist()) == sorted(dataset.read(columns=["id"]).column("id").to_pylist())
    assert set(table.column("model_version").to_pylist()) == {summary["train"]["model_version"]}
    assert set(table.column("dataset_version").to_pylist()) == {dataset.version}
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    assert np.isfinite(vectors).all() and vectors.std() > 0
    table_run = MlflowClient().get_run(written["mlflow_run_id"])
    assert table_run.data.metrics["rows"] == 500 and table_run.data.params["action"] == "backfill"
    assert table_run.data.params["table_path"] == written["table_path"]
    assert table_run.data.params["snapshot"] == written["snapshot"]


def test_registered_pyfunc_embeds_encoded_images(pipeline):
    summary, workspace = pipeline["summary"], pipeline["workspace"]
    model = mlflow.pyfunc.load_model(f"models:/{summary['train']['model_name']}@champion")
    dataset = DatasetStore(workspace / "datasets").resolve("digits")
    sample = dataset.read(columns=["id", "image"]).slice(0, 5)
    vectors = model.predict(pd.DataFrame({"image": sample.column("image").to_pylist()}))
    assert vectors.shape == (5, 32) and vectors.dtype == np.float32
    exported = open_current(workspace / "embeddings", "digits-ntxent", "digits").to_table().to_pandas().set_index("id")
    expected = np.stack(exported.loc[sample.column("id").to_pylist(), "embedding"].to_numpy())
    assert np.allclose(vectors, expected, atol=1e-5)


def test_second_training_is_gated_against_the_champion(digits_challenger):
    """A new challenger is scored next to the champion on the same data; the decision is recorded.
    It trains in a copy of the run's workspace (tests/conftest.py), which the browser test and the
    daily-run test below read too."""
    workspace, trained, evaluated = (digits_challenger[key] for key in ("workspace", "trained", "evaluated"))
    assert trained["model_version"] == "2" and trained["aliases"] == ["challenger"]
    decision = evaluated["promotion"]
    # Decided on val: the reason names both models' val kNN with their intervals.
    assert re.search(r"^v2 val knn_top1=[01]\.\d{4} \[[01]\.\d{4}, [01]\.\d{4}\] (beats|does not beat) champion v1 "
                     r"val knn_top1=[01]\.\d{4} \[[01]\.\d{4}, [01]\.\d{4}\]$", decision["reason"]), decision["reason"]
    assert f"v2 val knn_top1={evaluated['metrics']['val.knn_top1']:.4f}" in decision["reason"]
    store = f"sqlite:///{workspace / 'mlflow.db'}"
    client = MlflowClient(store, registry_uri=store)  # the copy's, not the shared run's store this module reads
    champion = str(client.get_model_version_by_alias("digits-ntxent", "champion").version)
    assert champion == ("2" if decision["promoted"] else "1")
    tag = client.get_model_version("digits-ntxent", "2").tags["promotion.decision"]
    assert tag.startswith("promoted" if decision["promoted"] else "kept")
    # The export follows the champion alias, whichever version holds it. The comparison of the training runs
    # runs beside it (the export logs a run of its own stage, which compare never lists), and so does
    # `clpipe evaluate` of the challenger by its alias, which finds the decision already recorded.
    export, compare, again = clpipe_together(
        ("export", "--model", "digits-ntxent@champion", "--dataset", "digits", "--json"), ("compare", "--json"),
        ("evaluate", "--model", "digits-ntxent@challenger", "--dataset", "digits", "--config",
         str(digits_challenger["config"]), "--json"), workspace=workspace)
    reevaluated = last_json(again)
    assert reevaluated["model_version"] == "2" and reevaluated["promotion"]["promoted"] == decision["promoted"]
    assert str(client.get_model_version_by_alias("digits-ntxent", "champion").version) == champion
    exported = last_json(export)
    assert exported["model_version"] == champion and exported["rows"] == 500
    compared = last_json(compare)
    assert compared["experiment"] == "digits-ntxent" and compared["metric"] == "eval.val.knn_top1"
    assert sorted(run["model_version"] for run in compared["runs"]) == ["digits-ntxent/1", "digits-ntxent/2"]
    assert compared["runs"][0]["metrics"]["eval.val.knn_top1"] >= compared["runs"][1]["metrics"]["eval.val.knn_top1"]
    assert "champion" in next(run for run in compared["runs"] if run["model_version"] == f"digits-ntxent/{champion}")[
        "aliases"]


def test_a_daily_run_whose_challenger_is_kept_leaves_the_table_alone(digits_run, digits_challenger, capsys):
    """The `train` deployment runs this every day: when the champion did not change, the run ends
    "up_to_date" and writes no snapshot (no full export); CURRENT stays where it was. The run is
    the challenger's (`digits_challenger`, tests/conftest.py: LOSING_CHALLENGER in a copy of the
    digits run's workspace); the table was read right before and right after it."""
    assert LOSING_CHALLENGER != DIGITS_RUN_CONFIG and "widths: [2]" in LOSING_CHALLENGER
    result, summary = digits_challenger["result"], digits_challenger["summary"]
    (current, listed), (current_after, listed_after) = digits_challenger["table_before"], digits_challenger["table_after"]
    assert summary["ingest"]["version"] == digits_run.summary["ingest"]["version"] and not summary["ingest"]["created"]
    assert summary["train"]["model_version"] == "2"
    assert not summary["evaluate"]["promotion"]["promoted"], summary["evaluate"]["promotion"]
    written = summary["reembed"]
    assert written["action"] == "up_to_date" and written["rows_embedded"] == 0 and written["mlflow_run_id"] is None
    assert (written["model_version"], written["snapshot"]) == ("1", digits_run.summary["reembed"]["snapshot"])
    assert current_after == current
    assert listed_after == listed  # no snapshot written, none removed
    assert re.search(r"^reembed .* up_to_date", result.stderr, re.MULTILINE), result.stderr[-2000:]
    _print_run_summary(summary, Workspace(digits_challenger["workspace"]))
    shown = capsys.readouterr().out
    assert re.search(r"embeddings +up_to_date .*model v1", shown), shown
