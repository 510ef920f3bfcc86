"""sources/__init__.py: dispatch from a source string, and `limit`."""

from __future__ import annotations

import pytest

from cl_core.datasets.errors import IngestError
from cl_core.datasets.records import BadRecord, ImageRecord
from cl_core.datasets.sources import open_source


def test_digits(tmp_path):
    source = open_source("digits", limit=3)
    assert (source.kind, source.description) == ("digits", "sklearn:digits")
    assert source.class_names is None
    assert [r.id for r in source.records] == ["digits-00000", "digits-00001", "digits-00002"]


def test_folder_of_shards(toy_shards):
    source = open_source(str(toy_shards))
    assert source.kind == "webdataset" and source.description == str(toy_shards.resolve())
    assert sum(1 for _ in source.records) == 40


def test_image_folder(tmp_path, build):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "x.png").write_bytes(build.toy_image(1))
    source = open_source(str(tmp_path))
    assert source.kind == "image_folder" and source.class_names == ["cls"]
    assert [r.id for r in source.records] == ["cls/x"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: p, "the folder is empty"),
        (lambda p: (p / "f.txt").write_text("x") and p, "no \\*.tar"),
        (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "is a file"),
    ],
)
def test_unusable_sources_raise_ingest_error_naming_them(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(IngestError, match=message) as raised:
        open_source(str(path))
    assert str(path) in str(raised.value)


def test_limit_counts_good_records_only(tmp_path, build):
    members = [("bad.cls", b"1")] + build.samples(["a", "b", "c"])
    build.write_shard(tmp_path / "s.tar", members)
    records = list(open_source(str(tmp_path), limit=2).records)
    assert [type(r) for r in records] == [BadRecord, ImageRecord, ImageRecord]


@pytest.mark.parametrize("limit", [0, -1, 2.5])
def test_bad_limit(limit):
    with pytest.raises(ValueError, match="limit"):
        open_source("digits", limit=limit)
