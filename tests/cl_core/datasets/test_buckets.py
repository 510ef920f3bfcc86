"""Ingest bucket by bucket without Ray: the source's units read in any order, each record checked
on its own, grouped by bucket, each bucket finished on its own (`cl_core.datasets.buckets`), then
published by `DatasetStore.ingest_buckets`: the same version as `DatasetStore.ingest`."""

from __future__ import annotations

import json
from collections import defaultdict
from functools import partial

import pytest

from cl_core.datasets import DatasetStore, IngestError
from cl_core.datasets.buckets import check_record, finish_bucket, record_bucket
from cl_core.datasets.image_rows import ImageRows
from cl_core.datasets.sources import open_source


def _by_buckets(store: DatasetStore, source: str, name: str, *, reverse_units: bool, max_bad_fraction=0.05):
    opened = open_source(source)
    make_rows = partial(ImageRows, opened.class_names)

    def write(staging):
        groups = defaultdict(list)
        units = list(enumerate(opened.units))
        for index, unit in reversed(units) if reverse_units else units:  # any order: the order key decides
            for position, record in enumerate(unit()):
                groups[record_bucket(record)].append(check_record(make_rows(), record, (index, position)))
        return [finish_bucket(make_rows(), bucket, records, staging, description=opened.description,
                              rows_per_file=store.rows_per_file, row_group_rows=store.row_group_rows)
                for bucket, records in groups.items()]

    return store.ingest_buckets(make_rows(), name, description=opened.description,
                                max_bad_fraction=max_bad_fraction, write=write)


def _quarantine(result):
    return [json.loads(line) for line in result.quarantine_path.read_text().splitlines()] if result.quarantine_path else []


@pytest.mark.parametrize("reverse_units", [False, True])
def test_buckets_give_the_local_version(tmp_path, build, reverse_units):
    source = build.toy_shard_folder(tmp_path / "shards")
    build.write_shard(source / "toy-train-0009.tar", [("a003.png", build.toy_image(99)), ("a003.cls", b"1"),
                                                       ("bad.png", b"not a png"), ("bad.cls", b"0")])
    local_store, bucket_store = DatasetStore(tmp_path / "local"), DatasetStore(tmp_path / "buckets", rows_per_file=4)
    local = local_store.ingest(str(source), "toy", max_bad_fraction=0.1)
    bucketed = _by_buckets(bucket_store, str(source), "toy", reverse_units=reverse_units, max_bad_fraction=0.1)
    assert (bucketed.version, bucketed.rows, bucketed.splits, bucketed.channels) == (
        local.version, local.rows, local.splits, local.channels)
    assert _quarantine(bucketed) == _quarantine(local) and len(_quarantine(local)) == 2
    assert bucket_store.resolve("toy").read().equals(local_store.resolve("toy").read())
    files = bucket_store.resolve("toy").manifest["files"]
    assert files == sorted(files) and all(f.startswith("part-") for f in files)
    assert not list((tmp_path / "buckets" / "toy").glob(".tmp-*"))


def test_a_failing_bucket_ingest_leaves_no_trace(tmp_path, build):
    source = build.toy_shard_folder(tmp_path / "shards")
    store = DatasetStore(tmp_path / "store")
    kept = store.ingest(str(source), "toy")

    def write(staging):
        (staging / "part-000-00000.parquet").write_bytes(b"half")
        raise OSError("node lost")

    with pytest.raises(OSError, match="node lost"):
        store.ingest_buckets(ImageRows(), "toy", description="x", max_bad_fraction=0.05, write=write)
    assert store.latest("toy") == kept.version and store.versions("toy") == [kept.version]
    assert not list((tmp_path / "store" / "toy").glob(".tmp-*"))
    with pytest.raises(IngestError, match="0 good records"):
        store.ingest_buckets(ImageRows(), "toy", description="x", max_bad_fraction=0.05, write=lambda staging: [])
