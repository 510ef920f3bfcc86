"""Ingest of the real MNIST and CIFAR-10 shards in ../shared/data (skipped when absent)."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from cl_core.datasets import DatasetStore, decode_images

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


@pytest.mark.parametrize(
    "folder, splits, channels, size",
    [
        ("mnist", {"train": 60_000, "test": 10_000}, 1, [28, 28]),
        ("cifar10", {"train": 50_000, "test": 10_000}, 3, [32, 32]),
    ],
)
def test_real_shards_ingest_completely(tmp_path, shared_data, folder, splits, channels, size):
    store = DatasetStore(tmp_path)
    result = store.ingest(str(shared_data(folder)), folder)
    assert result.splits == splits and result.quarantined == 0 and result.channels == channels
    version = store.resolve(folder)
    assert version.manifest["image_size"] == size and version.manifest["distinct_image_sizes"] == 1
    assert version.manifest["labels"] == list(range(10))
    for split in splits:
        labels = version.read(split=split, columns=["label"]).column("label")
        assert pc.unique(labels).sort().to_pylist() == list(range(10)), split
    first = next(version.iter_batches(batch_size=16, columns=["image"]))
    assert decode_images(first.column("image")).shape == (16, channels, *size)
