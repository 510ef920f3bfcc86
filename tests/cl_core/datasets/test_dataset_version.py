"""dataset_version.py: read, iter_batches, num_rows and the manifest's typed properties."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from cl_core.datasets import DatasetStore, DatasetVersion, TextPairRecord
from cl_core.datasets.manifest import MANIFEST_FILE


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


def test_image_properties_read_the_manifest(digits):
    assert (digits.kind, digits.channels, digits.num_classes, digits.pairs, digits.unlabeled_rows) == ("image", 1, 10, 0, 0)
    assert digits.splits == {split: digits.num_rows(split) for split in ("train", "val", "test")}
    assert sum(digits.splits.values()) == digits.num_rows()
    digits.splits["train"] = 0  # a copy: the version does not change
    assert digits.num_rows("train") > 0


def test_text_properties_read_the_manifest(tmp_path):
    records = [TextPairRecord(f"p{i}", f"first {i}", f"second {i}", split="train") for i in range(6)]
    records += [TextPairRecord(f"s{i}", f"single {i}", label=i % 2, split="test") for i in range(4)]
    store = DatasetStore(tmp_path)
    store.ingest_text_records(records, "pairs", description="generated:pairs")
    version = store.resolve("pairs")
    assert (version.kind, version.pairs, version.unlabeled_rows) == ("text", 6, 6)
    assert version.splits == {"train": 6, "test": 4} and version.class_names is None
    with pytest.raises(TypeError, match="no image channels"):
        _ = version.channels


def test_manifests_written_before_a_field_existed_read_with_its_default(tmp_path):
    store = DatasetStore(tmp_path)
    result = store.ingest("digits", "digits", limit=20)
    manifest_path = result.path / MANIFEST_FILE
    old = json.loads(manifest_path.read_text())
    for key in ("kind", "unlabeled_rows"):
        del old[key]
    manifest_path.write_text(json.dumps(old))
    version = DatasetVersion(result.path)
    assert (version.kind, version.unlabeled_rows, version.pairs) == ("image", 0, 0)


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
