"""A small real image dataset and a fake model for the embedding-table tests."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cl_core.datasets import DatasetStore, ImageRecord

LINEAGE = {"model_name": "m", "model_version": "3", "dataset_version": "abc"}


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (4, 4), color=value % 256).save(buffer, format="PNG")
    return buffer.getvalue()


def fake_embed(images: list[bytes]) -> np.ndarray:
    """A deterministic 'model': the byte length and a sum of the bytes."""
    return np.array([[len(b), float(sum(b) % 997)] for b in images], dtype=np.float32)


def record(model_version: str = "3", dataset_version: str = "v", action: str = "export") -> dict:
    return {"model_name": "m", "model_version": model_version, "dataset_name": "d", "dataset_version": dataset_version,
            "prefect_flow_run_id": None, "mlflow_run_id": None, "action": action}


@pytest.fixture
def ingest(tmp_path):
    """ingest(values) -> a DatasetVersion with one image per value, ids img<value>."""
    store = DatasetStore(tmp_path / "datasets", row_group_rows=8)

    def make(values, ids=None):
        ids = ids or [f"img{v:03d}" for v in values]
        records = [ImageRecord(i, png(v), v % 3, None) for i, v in zip(ids, values, strict=True)]
        result = store.ingest_records(records, "d", description="t")
        return store.resolve("d", result.version)

    return make
