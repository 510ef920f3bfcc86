"""Ingest of the real MNIST and CIFAR-10 shards in ../shared/data (skipped when absent): one train
and one test shard of each. Every shard has the same layout and samples are shuffled across
shards, so two of them exercise what all of them would (the member names, the PNG or JPEG
images, the labels, the split from the file name, val carved from train by id since the shards
name none) at a fraction of the time; the counts add up to each shard's exact size."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from cl_core.datasets import DatasetStore, decode_images

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


@pytest.mark.parametrize(
    "folder, splits, channels, size",
    [
        ("mnist", {"train": 9_023, "val": 977, "test": 10_000}, 1, [28, 28]),
        ("cifar10", {"train": 4_528, "val": 472, "test": 5_000}, 3, [32, 32]),
    ],
)
def test_a_train_and_a_test_shard_ingest_cleanly(tmp_path, shared_data, folder, splits, channels, size):
    source = tmp_path / "shards"
    source.mkdir()
    for split in ("train", "test"):
        shard = f"{folder}-{split}-0000.tar.gz"
        (source / shard).symlink_to(shared_data(folder) / shard)
    store = DatasetStore(tmp_path / "datasets")
    result = store.ingest(str(source), folder)
    assert result.splits == splits and result.quarantined == 0 and result.channels == channels
    version = store.resolve(folder)
    assert version.manifest["image_size"] == size and version.manifest["distinct_image_sizes"] == 1
    assert version.manifest["labels"] == list(range(10))
    for split in splits:
        labels = version.read(split=split, columns=["label"]).column("label")
        assert pc.unique(labels).sort().to_pylist() == list(range(10)), split
    first = next(version.iter_batches(batch_size=16, columns=["image"]))
    assert decode_images(first.column("image")).shape == (16, channels, *size)
