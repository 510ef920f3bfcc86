"""sources/webdataset.py: member grouping, labels, split names, damaged archives."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tracemalloc

import numpy as np
import pytest

from cl_core.config import DataConfig
from cl_core.datasets import DatasetStore
from cl_core.datasets.errors import IngestError
from cl_core.datasets.records import BadRecord, ImageRecord
from cl_core.datasets.sources.webdataset import MAX_MEMBER_BYTES, list_shards, read_shard, split_from_shard_name


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


# Bounded reading (data.max_member_bytes): small limits and member sizes stand in for the GBs of a
# crafted shard or a gzip bomb.

def _info(name: str, size: int, **pax) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.pax_headers = pax
    return info


def _peak_bytes(read) -> tuple[list, int]:
    """What `read()` returns and the peak of Python allocations while it ran."""
    tracemalloc.start()
    try:
        result = read()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", ["s.tar", "s.tar.gz"])
def test_a_member_above_the_limit_is_refused_with_its_name_and_size(tmp_path, build, name):
    big = build.encode(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))  # ~4 KB, incompressible
    members = build.samples(["a"]) + [("big.png", big), ("big.cls", b"1")] + build.samples(["c"])
    shard = build.write_shard(tmp_path / name, members)
    records = list(read_shard(shard, max_member_bytes=2000))
    good = [r.id for r in records if isinstance(r, ImageRecord)]
    (refused,) = [r for r in records if isinstance(r, BadRecord)]
    assert refused.id_or_location == "big.png" and refused.source == str(shard)
    assert f"{len(big)} bytes" in refused.reason and "2000" in refused.reason and "max_member_bytes" in refused.reason
    if name == "s.tar":
        assert good == ["a", "c"]  # skipped by a seek: the rest of the shard is read
    else:
        assert good == ["a"]  # reaching "c" would mean decompressing past the refused member
        assert "not read" in refused.reason


def test_unused_fields_are_never_read_into_memory(tmp_path, build):
    """A sample's fields other than the image and .cls (here a 32 MB .npy) are skipped, not read,
    whatever their size; the sample ingests."""
    image = build.toy_image(3)
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as out:
        out.truncate(32 * 2**20)
    shard = tmp_path / "s.tar"
    with tarfile.open(shard, "w") as tar:
        for member, data in [("k.png", image), ("k.cls", b"4")]:
            tar.addfile(_info(member, len(data)), io.BytesIO(data))
        tar.add(huge, arcname="k.npy")
        tar.addfile(_info("k2.png", len(image)), io.BytesIO(image))
    records, peak = _peak_bytes(lambda: list(read_shard(shard, max_member_bytes=1000)))
    assert records == [ImageRecord("k", image, 4, None), ImageRecord("k2", image, None, None)]
    assert peak < 4 * 2**20, peak


def test_a_gzip_bomb_member_is_refused_without_decompressing_it(tmp_path, build):
    """The member's header says 1 GiB, and the compressed stream stops 1 MiB into its data: a
    reader that decompressed the member (to keep it or to skip it) would find the stream damaged.
    This one refuses it from its header, keeps the samples before it, and stays small."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for member, data in build.samples(["a", "b"]):
            tar.addfile(_info(member, len(data)), io.BytesIO(data))
        samples_end = tar.offset
    stream = raw.getvalue()[:samples_end] + _info("bomb.png", 2**30).tobuf() + bytes(2**20)
    shard = tmp_path / "bomb-train.tar.gz"
    shard.write_bytes(gzip.compress(stream))
    records, peak = _peak_bytes(lambda: list(read_shard(shard, max_member_bytes=2**20)))
    assert [r.id for r in records if isinstance(r, ImageRecord)] == ["a", "b"]
    (refused,) = [r for r in records if isinstance(r, BadRecord)]
    assert refused.id_or_location == "bomb.png" and f"{2**30} bytes" in refused.reason
    assert "damaged" not in refused.reason
    assert peak < 2**20, peak


def test_a_long_header_member_above_the_limit_fails_the_shard_not_the_process(tmp_path, build):
    """A pax extended header is a member tarfile itself reads whole: one above the limit ends the
    shard's reading (the samples before it are kept)."""
    shard = tmp_path / "s.tar"
    with tarfile.open(shard, "w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in build.samples(["a"]):
            tar.addfile(_info(member, len(data)), io.BytesIO(data))
        info = _info("b.png", 3, comment="x" * 5000)
        tar.addfile(info, io.BytesIO(b"png"))
    records = list(read_shard(shard, max_member_bytes=4000))
    assert [r.id for r in records if isinstance(r, ImageRecord)] == ["a"]
    (refused,) = [r for r in records if isinstance(r, BadRecord)]
    assert refused.source == str(shard) and "4000" in refused.reason and "header" in refused.reason


def test_store_quarantines_a_refused_member_and_still_writes_the_version(tmp_path, build):
    big = build.encode(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
    members = build.samples([f"k{i}" for i in range(30)]) + [("big.png", big), ("big.cls", b"1")]
    build.write_shard(tmp_path / "shards" / "s-train.tar", members)
    result = DatasetStore(tmp_path / "store").ingest(str(tmp_path / "shards"), "toy", max_bad_fraction=0.1,
                                                      max_member_bytes=2000)
    assert (result.rows, result.quarantined) == (30, 1)
    (entry,) = [json.loads(line) for line in result.quarantine_path.read_text().splitlines()]
    assert entry["id"] == "big.png" and f"{len(big)} bytes" in entry["reason"]


def test_max_member_bytes_is_a_data_setting():
    assert DataConfig().max_member_bytes == MAX_MEMBER_BYTES == 64 * 2**20
    assert DataConfig(max_member_bytes=1000).max_member_bytes == 1000
    with pytest.raises(ValueError):
        DataConfig(max_member_bytes=0)


def test_many_members_do_not_pile_up_in_memory(tmp_path, build):
    """tarfile keeps every member it read in a list; the reader does not let it."""
    shard = tmp_path / "s.tar"
    with tarfile.open(shard, "w") as tar:
        for i in range(20_000):
            tar.addfile(_info(f"k{i}.txt", 0), io.BytesIO(b""))
    records, peak = _peak_bytes(lambda: list(read_shard(shard)))
    assert len(records) == 20_000 and all(isinstance(r, BadRecord) for r in records[:3])
    assert peak < 2**20 + 20_000 * 400, peak  # the records themselves, not 20,000 TarInfos besides
