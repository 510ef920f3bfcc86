"""A wrong name fails before any service starts, with the message the flows give."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from cl_core.datasets import DatasetNotFoundError, DatasetStore, IngestError
from flows import preflight
from flows.mlflow_edge import registry
from tests.conftest import clpipe


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A workspace with a small digits dataset and a registry holding `known` v1 (@champion) and
    `empty` (no versions); no Prefect, no Ray."""
    root = tmp_path_factory.mktemp("preflight")
    DatasetStore(root / "datasets").ingest("digits", "digits", limit=50)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_registered_model("known")
    client.create_model_version("known", source=str(root / "nowhere"))
    client.set_registered_model_alias("known", "champion", "1")
    client.create_registered_model("empty")
    return root


def _registry_error(uri: str, ref: str) -> str:
    mlflow.set_tracking_uri(uri)
    try:
        with pytest.raises(LookupError) as raised:
            registry.ModelRef.parse(ref).resolve(MlflowClient())
    finally:
        mlflow.set_tracking_uri(None)
    return str(raised.value)


@pytest.mark.parametrize("ref", ["nosuch@champion", "known@nosuch", "known/7", "nosuch/1", "nosuch", "empty"])
def test_a_missing_model_gives_the_registry_s_own_message(workspace, ref):
    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    with pytest.raises(LookupError) as raised:
        preflight.check_model(uri, ref)
    assert str(raised.value) == _registry_error(uri, ref)


@pytest.mark.parametrize("ref,default_alias", [("known", None), ("known@champion", None), ("known/1", None),
                                               ("known", "champion")])
def test_an_existing_model_passes(workspace, ref, default_alias):
    preflight.check_model(f"sqlite:///{workspace / 'mlflow.db'}", ref, default_alias)


def test_a_bare_name_follows_the_default_alias(workspace):
    with pytest.raises(LookupError, match="known@challenger"):
        preflight.check_model(f"sqlite:///{workspace / 'mlflow.db'}", "known", "challenger")


def test_a_workspace_without_a_registry_has_no_model(tmp_path):
    with pytest.raises(LookupError, match="Registered Model with name=digits-ntxent not found"):
        preflight.check_model(f"sqlite:///{tmp_path / 'mlflow.db'}", "digits-ntxent@champion")
    assert not (tmp_path / "mlflow.db").exists()


def test_sources_and_datasets(workspace, tmp_path):
    preflight.check_source("digits", text=False)
    preflight.check_source(str(tmp_path), text=True)
    with pytest.raises(IngestError, match="does not exist"):
        preflight.check_source(str(tmp_path / "nope"), text=False)
    with pytest.raises(IngestError, match="text source .* does not exist"):
        preflight.check_source("digits", text=True)
    assert preflight.check_dataset(workspace / "datasets", "digits").name == "digits"
    with pytest.raises(DatasetNotFoundError):
        preflight.check_dataset(workspace / "datasets", "nosuch")


def test_interaction_sources(tmp_path):
    from cl_core.config import InteractionsSourceSpec, SideTableSpec

    ratings = tmp_path / "ratings.csv"
    ratings.write_text("user,item,timestamp\n1,2,3\n")
    preflight.check_interactions_source(str(ratings), InteractionsSourceSpec())
    with pytest.raises(IngestError, match="interactions source .* does not exist"):
        preflight.check_interactions_source(str(tmp_path / "nope.csv"), InteractionsSourceSpec())
    with_items = InteractionsSourceSpec(items=SideTableSpec(path=str(tmp_path / "items.csv"), id_column="id"))
    with pytest.raises(IngestError, match=r"the items side table .*items.csv' \(data.interactions.items.path\) is not a file"):
        preflight.check_interactions_source(str(ratings), with_items)


def test_a_missing_side_table_fails_in_one_line_before_prefect_starts(tmp_path):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("user,item,timestamp\n1,2,3\n")
    config = tmp_path / "interactions.yaml"
    config.write_text(f"data:\n  modality: interactions\n  interactions:\n    users:\n      path: {tmp_path / 'users.csv'}\n"
                      "      id_column: user\n")
    result = clpipe("ingest", str(ratings), "--config", str(config), workspace=tmp_path / "ws", timeout=120,
                    env={"PREFECT_API_URL": None})
    assert result.returncode == 1
    assert result.stderr.startswith("clpipe ingest failed: IngestError: the users side table"), result.stderr
    assert not (tmp_path / "ws" / ".prefect").exists()


@pytest.mark.parametrize("args,expected", [
    (["train", "--dataset", "nosuch"], "clpipe train failed: DatasetNotFoundError: no dataset 'nosuch'"),
    (["evaluate", "--model", "nosuch@champion", "--dataset", "digits"],
     "clpipe evaluate failed: LookupError: model nosuch@champion not found in the registry"),
    (["export", "--model", "known@nosuch", "--dataset", "digits"],
     "clpipe export failed: LookupError: model known@nosuch not found"),
    (["reembed", "--model", "known", "--dataset", "nosuch"], "clpipe reembed failed: DatasetNotFoundError"),
    (["ingest", "/no/such/folder", "--name", "x"], "clpipe ingest failed: IngestError: source '/no/such/folder'"),
])
def test_a_wrong_name_fails_in_one_line_before_prefect_starts(workspace, args, expected):
    # Without PREFECT_API_URL a flow would start Prefect's temporary server in workspace/.prefect.
    result = clpipe(*args, workspace=workspace, timeout=120, env={"PREFECT_API_URL": None})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(expected), result.stderr
    assert not (workspace / ".prefect").exists()
