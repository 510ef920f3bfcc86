"""sources/webdataset.py: member grouping, labels, split names, damaged archives."""

from __future__ import annotations

import io
import tarfile

import pytest

from cl_core.datasets.errors import IngestError
from cl_core.datasets.records import BadRecord, ImageRecord
from cl_core.datasets.sources.webdataset import list_shards, read_shard, split_from_shard_name


@pytest.mark.parametrize(
    "name, split",
    [
        ("toy-train-0000.tar.gz", "train"),
        ("mnist_train.tar", "train"),
        ("cifar10-test-0001.tgz", "test"),
        ("a-val-3.tar", "val"),
        ("a_valid.tar", "val"),
        ("a-dev-2.tar", "val"),
        ("contest-0000.tar", None),
        ("shard-0000.tar", None),
    ],
)
def test_split_from_shard_name(name, split):
    assert split_from_shard_name(name) == split


def test_a_dev_shard_lands_in_val(tmp_path, build):
    shard = build.write_shard(tmp_path / "glue-dev-0000.tar", build.samples(["k0", "k1"]))
    assert [r.split for r in read_shard(shard)] == ["val", "val"]


def test_reads_labels_ids_and_split(tmp_path, build):
    members = build.samples(["x/k0", "x/k1", "k2"], label=lambda i: i + 4)
    shard = build.write_shard(tmp_path / "d-train-0.tar.gz", members)
    records = list(read_shard(shard))
    assert [(r.id, r.label, r.split) for r in records] == [
        ("x/k0", 4, "train"),
        ("x/k1", 5, "train"),
        ("k2", 6, "train"),
    ]
    assert records[0].image == members[0][1]


def test_leading_dot_slash_and_extension_case_are_normalised(tmp_path, build):
    image = build.toy_image(1, fmt="JPEG")
    shard = build.write_shard(tmp_path / "s.tar", [("./k.JPG", image), ("./k.cls", b" 2\n")])
    assert list(read_shard(shard)) == [ImageRecord("k", image, 2, None)]


def test_missing_label_bad_label_and_missing_image(tmp_path, build):
    image = build.toy_image(1)
    shard = build.write_shard(
        tmp_path / "s.tar",
        [
            ("nolabel.png", image),
            ("badlabel.png", image),
            ("badlabel.cls", b"cat"),
            ("labelonly.cls", b"1"),
            ("negative.png", image),
            ("negative.cls", b"-1"),
        ],
    )
    nolabel, badlabel, labelonly, negative = read_shard(shard)
    assert isinstance(nolabel, ImageRecord) and nolabel.label is None
    assert isinstance(badlabel, BadRecord) and "not an integer" in badlabel.reason
    assert badlabel.id_or_location == "badlabel" and badlabel.source == str(shard)
    assert isinstance(labelonly, BadRecord) and "no .png/.jpg/.jpeg" in labelonly.reason
    assert isinstance(negative, BadRecord) and "negative" in negative.reason


def test_truncated_gzip_keeps_samples_before_the_damage(tmp_path, build):
    whole = build.write_shard(
        tmp_path / "whole-train.tar.gz", build.samples(f"k{i:03d}" for i in range(200))
    )
    cut = tmp_path / "cut-train.tar.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    records = list(read_shard(cut))  # must not raise
    good = [r for r in records if isinstance(r, ImageRecord)]
    assert 0 < len(good) < 200
    assert [r.id for r in good] == [f"k{i:03d}" for i in range(len(good))]
    assert isinstance(records[-1], BadRecord)
    assert records[-1].source == str(cut) and "damaged" in records[-1].reason


def test_plain_tar_cut_at_a_member_boundary_is_reported(tmp_path, build):
    whole = build.write_shard(tmp_path / "w.tar", build.samples(["a", "b", "c"]))
    with tarfile.open(whole) as tar:
        third_header = tar.getmembers()[2].offset  # "b.png" starts here: "a" is complete
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole.read_bytes()[:third_header])
    records = list(read_shard(cut))
    assert [r.id for r in records if isinstance(r, ImageRecord)] == ["a"]
    assert isinstance(records[-1], BadRecord) and "end-of-archive" in records[-1].reason


def test_not_an_archive_is_one_bad_record(tmp_path):
    shard = tmp_path / "junk.tar.gz"
    shard.write_bytes(b"definitely not gzip" * 10)
    (record,) = read_shard(shard)
    assert isinstance(record, BadRecord) and record.id_or_location == str(shard)


def test_reads_in_memory_without_extracting(tmp_path, build):
    shard = build.write_shard(tmp_path / "s.tar.gz", build.samples(["a", "b"]))
    before = sorted(tmp_path.rglob("*"))
    assert len(list(read_shard(shard))) == 2
    assert sorted(tmp_path.rglob("*")) == before


def test_list_shards_sorted_and_empty_folder_named(tmp_path, build):
    for name in ["b.tar", "a.tgz", "c.tar.gz"]:
        build.write_shard(tmp_path / name, [])
    (tmp_path / "notes.txt").write_text("ignored")
    assert [p.name for p in list_shards(tmp_path)] == ["a.tgz", "b.tar", "c.tar.gz"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IngestError, match=str(empty)):
        list_shards(empty)


def test_members_of_one_sample_may_come_in_any_order(tmp_path, build):
    image = build.toy_image(3)
    shard = build.write_shard(tmp_path / "s.tar", [("k.cls", b"7"), ("k.png", image)])
    assert list(read_shard(shard)) == [ImageRecord("k", image, 7, None)]


def test_second_image_for_a_key_is_reported(tmp_path, build):
    image = build.toy_image(3)
    shard = build.write_shard(tmp_path / "s.tar", [("k.png", image), ("k.png", image)])
    first, second = read_shard(shard)
    assert isinstance(first, BadRecord) and "second .png" in first.reason
    assert isinstance(second, ImageRecord)
    assert io.BytesIO(second.image).read() == image
