"""A small digits dataset in a store, and the params a worker gets to find it."""

from __future__ import annotations

import pytest

from cl_core.datasets import DatasetStore


@pytest.fixture(scope="package")
def digits_params(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("datasets")
    result = DatasetStore(root).ingest("digits", "digits", limit=300)
    return {"dataset_root": str(root), "dataset_name": "digits", "dataset_version": result.version}
