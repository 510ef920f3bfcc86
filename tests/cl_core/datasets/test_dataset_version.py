"""dataset_version.py: read, iter_batches, num_rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from cl_core.datasets import DatasetStore


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    store = DatasetStore(tmp_path_factory.mktemp("store"), rows_per_file=700, row_group_rows=128)
    store.ingest("digits", "digits")
    return store.resolve("digits")


def test_iter_batches_reassembles_to_read(digits):
    batches = list(digits.iter_batches(batch_size=100))
    assert all(b.num_rows <= 100 for b in batches) and len(batches) > len(digits.files)
    assert pa.Table.from_batches(batches).equals(digits.read())


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_split_filter_with_and_without_the_split_column(digits, split):
    table = digits.read(split=split, columns=["id", "label"])
    assert table.column_names == ["id", "label"] and table.num_rows == digits.num_rows(split)
    batches = digits.iter_batches(64, columns=["id", "label"], split=split)
    streamed = pa.Table.from_batches(list(batches))
    assert streamed.equals(table)
    with_split = digits.read(split=split, columns=["split"])
    assert set(with_split.column("split").to_pylist()) == {split}


def test_num_rows(digits):
    assert digits.num_rows() == 1797
    assert sum(digits.num_rows(s) for s in ("train", "val", "test")) == 1797


def test_bad_arguments_name_the_allowed_values(digits):
    with pytest.raises(ValueError, match="split must be one of"):
        digits.read(split="training")
    with pytest.raises(ValueError, match="unknown columns \\['pixels'\\]"):
        next(digits.iter_batches(columns=["pixels"]))
    with pytest.raises(ValueError, match="batch_size"):
        next(digits.iter_batches(batch_size=0))


def test_iter_batches_memory_does_not_grow_with_rows(tmp_path, build):
    # 1,500 incompressible 32x32 RGB PNGs (~3 KB each): ~4.5 MB of image bytes.
    rng = np.random.default_rng(0)
    members = []
    for i in range(1500):
        noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)  # (H, W, 3)
        members.append((f"k{i:05d}.png", build.encode(noise)))
    build.write_shard(tmp_path / "shards" / "noise.tar", members)
    store = DatasetStore(tmp_path / "store", row_group_rows=100)
    store.ingest(str(tmp_path / "shards"), "noise")
    version = store.resolve("noise")
    total = sum(len(m[1]) for m in members)

    start = pa.total_allocated_bytes()
    peak, rows = 0, 0
    for batch in version.iter_batches(batch_size=100):
        rows += batch.num_rows
        peak = max(peak, pa.total_allocated_bytes() - start)
        del batch
    assert rows == 1500
    assert peak < total / 4, f"streaming held {peak} bytes of {total}"
