"""Checks that need no service, run by the CLI before Prefect or Ray start.

A misspelt source, dataset or model used to fail only once Prefect's temporary server was up
(12-19 s). These checks read the workspace's files and the model registry directly and raise the
same errors, with the same messages, as the flows would; the flows keep their own checks, for
deployments and for anything that changes in between.

Heavy imports (mlflow, prefect, ray) stay out: with the default SQLite tracking store the registry
is read with `sqlite3`, a few milliseconds; any other store is asked through `MlflowClient` (about
1.5 s more, importing mlflow and opening its store). The tables and columns read are MLflow's,
not a public API: `SQLITE_SCHEMA` lists them, tests/flows/test_dependency_apis.py fails if the
installed MLflow's schema lacks them, and a database this cannot read is asked through
`MlflowClient` instead.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from cl_core.config import DataConfig, InteractionsSourceSpec
from cl_core.datasets.layout import version_folder
from cl_core.modalities import modality
from cl_core.modalities.image import IMAGE
from cl_core.modalities.interactions import INTERACTIONS
from cl_core.modalities.text import TEXT

if TYPE_CHECKING:
    from cl_core.datasets.dataset_version import DatasetVersion

# Mirrors flows.mlflow_edge.registry.ModelRef, which imports mlflow and torch to parse a string.
_REF = re.compile(r"^(?P<name>[^@/]+)(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>\d+))?$")
_SQLITE = "sqlite:///"
_NO_VERSIONS = "no versions"
# What the fast path reads of MLflow's SQL registry (mlflow/store/model_registry/dbmodels/models.py),
# and the stage MLflow's SQL store gives a deleted version (model_version_stages.STAGE_DELETED_INTERNAL).
SQLITE_SCHEMA = {"registered_models": ("name",), "registered_model_aliases": ("name", "alias"),
                 "model_versions": ("name", "version", "current_stage")}
DELETED_STAGE = "Deleted_Internal"


def check_data_source(data: DataConfig) -> None:
    """The source `ingest` would read for the `data` section exists: its record's "check_source"
    part, with the section that says how the source reads (`source_section`)."""
    record = modality(data.modality)
    spec = getattr(data, record.source_section) if record.source_section else None
    record.part("check_source")(data.source, spec)


def check_source(source: str, text: bool) -> None:
    """The source `ingest` would read exists ("digits" is built in for images)."""
    (TEXT if text else IMAGE).part("check_source")(source, None)


def check_interactions_source(source: str, spec: InteractionsSourceSpec) -> None:
    """The interactions source and its side tables exist; "ml-100k" needs the recbole wheel."""
    INTERACTIONS.part("check_source")(source, spec)


def check_dataset(datasets_root: Path, name: str, version: str | None = None) -> DatasetVersion:
    """The dataset (and version) exists; raises DatasetNotFoundError as the flows do. The lookup
    reads the store's folders; pyarrow is imported only to open a version that exists."""
    folder = version_folder(Path(datasets_root), name, version)
    from cl_core.datasets.dataset_version import DatasetVersion

    return DatasetVersion(folder)


def check_model(tracking_uri: str, model_ref: str, default_alias: str | None = None) -> None:
    """NAME, NAME@ALIAS or NAME/VERSION names a registered model version; raises LookupError with
    the message `flows.mlflow_edge.registry.ModelRef.resolve` gives. `default_alias` applies to a bare NAME
    (reembed follows "champion"); without it a bare NAME means its newest version."""
    match = _REF.match(model_ref.strip())
    if not match:
        raise ValueError(f"model reference {model_ref!r} must be NAME, NAME@ALIAS or NAME/VERSION")
    name, version = match["name"], match["version"]
    alias = match["alias"] or (None if version else default_alias)
    if tracking_uri.startswith(_SQLITE):
        try:
            missing = _missing_in_sqlite(Path(tracking_uri[len(_SQLITE):]), name, alias, version)
        except sqlite3.Error:  # not the schema this reads (another MLflow), or not readable now
            missing = _missing_in_client(tracking_uri, name, alias, version)
    else:
        missing = _missing_in_client(tracking_uri, name, alias, version)
    if missing == _NO_VERSIONS:
        raise LookupError(f"registered model {name!r} has no versions")
    if missing:
        shown = name + (f"@{alias}" if alias else f"/{version}" if version else "")
        raise LookupError(f"model {shown} not found in the registry at {tracking_uri}: {missing}")


def _missing_in_sqlite(database: Path, name: str, alias: str | None, version: str | None) -> str | None:
    """Why the reference resolves to nothing, or None when it resolves; sqlite3.Error when the
    database is not the schema this reads."""
    # The messages MLflow's SQL store gives: a version is looked up without its model first, and
    # a bare NAME by a search, which finds no versions rather than no model.
    if version:
        unknown = f"Model Version (name={name}, version={version}) not found"
    else:
        unknown = f"Registered Model with name={name} not found" if alias else _NO_VERSIONS
    if not database.is_file():
        return unknown
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        if not db.execute("SELECT 1 FROM registered_models WHERE name = ?", (name,)).fetchone():
            return unknown
        if alias:
            found = db.execute("SELECT 1 FROM registered_model_aliases WHERE name = ? AND alias = ?",
                               (name, alias)).fetchone()
            return None if found else f"Registered model alias {alias} not found."
        if version:
            found = db.execute("SELECT 1 FROM model_versions WHERE name = ? AND version = ? AND current_stage != ?",
                               (name, int(version), DELETED_STAGE)).fetchone()
            return None if found else unknown
        found = db.execute("SELECT 1 FROM model_versions WHERE name = ? AND current_stage != ?",
                           (name, DELETED_STAGE)).fetchone()
        return None if found else _NO_VERSIONS


def _missing_in_client(tracking_uri: str, name: str, alias: str | None, version: str | None) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from flows.mlflow_edge.registry_errors import is_not_found

    client = MlflowClient(tracking_uri)
    try:
        if alias:
            client.get_model_version_by_alias(name, alias)
        elif version:
            client.get_model_version(name, version)
        elif not client.get_registered_model(name).latest_versions:  # the name as a name, never in a filter
            return _NO_VERSIONS
    except MlflowException as error:
        if not is_not_found(error):
            raise  # a server error or a refusal says nothing about the model
        return error.message if alias or version else _NO_VERSIONS
    return None
