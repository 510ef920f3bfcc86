"""store.py: ingest, versioning, quarantine, failure atomicity, resolve."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.compute as pc
import pytest

from cl_core.datasets import (
    BadRecord,
    DatasetNotFoundError,
    DatasetStore,
    ImageRecord,
    IngestError,
    decode_images,
    split_for_id,
)
from cl_core.datasets import store as store_module
from cl_core.datasets.version_id import bucket_order


def stored_order(ids: list[str]) -> list[str]:
    """`ids` in the order a version stores them: by bucket, then id."""
    return [ids[i] for i in bucket_order(ids)[0]]


def _snapshot(root):
    """Every file under root with its bytes: 'untouched' means this does not change."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _no_staging_left(root):
    return not list(root.rglob(".tmp-*"))


def test_split_for_id_is_deterministic_80_10_10():
    ids = [f"id-{i}" for i in range(20_000)]
    splits = Counter(split_for_id(i) for i in ids)
    assert [split_for_id(i) for i in ids[:100]] == [split_for_id(i) for i in ids[:100]]
    assert abs(splits["train"] / 20_000 - 0.8) < 0.02
    assert abs(splits["val"] / 20_000 - 0.1) < 0.02
    assert abs(splits["test"] / 20_000 - 0.1) < 0.02


def test_digits_ingest(tmp_path):
    store = DatasetStore(tmp_path)
    result = store.ingest("digits", "digits")
    assert (result.rows, result.created, result.quarantined, result.channels) == (1797, True, 0, 1)
    assert set(result.splits) == {"train", "val", "test"} and sum(result.splits.values()) == 1797
    assert (tmp_path / "digits" / "LATEST").read_text().strip() == result.version
    version = store.resolve("digits")
    manifest = version.manifest
    assert manifest["labels"] == list(range(10)) and manifest["num_classes"] == 10
    assert manifest["image_size"] == [8, 8] and manifest["channels"] == 1
    assert manifest["source"] == "sklearn:digits" and manifest["schema_version"] == 1
    assert manifest["splits"] == result.splits and manifest["files"] == ["part-00000.parquet"]
    table = version.read()
    ids = table.column("id").to_pylist()
    assert table.num_rows == 1797 and ids == stored_order(ids)
    assert decode_images(table.column("image")[:5]).shape == (5, 1, 8, 8)


def test_toy_shards_counts_labels_and_splits_from_names(tmp_path, toy_shards):
    result = DatasetStore(tmp_path / "store").ingest(str(toy_shards), "toy")
    # The shards name train and test only: data.val_fraction (10 %) of train, chosen by id, is val.
    assert result.rows == 40 and result.splits == {"train": 25, "val": 5, "test": 10}
    version = DatasetStore(tmp_path / "store").resolve("toy")
    assert version.manifest["labels"] == [0, 1, 2] and version.manifest["image_size"] == [6, 5]
    test_ids = sorted(version.read(split="test", columns=["id"]).column("id").to_pylist())
    assert test_ids == [f"t{i:03d}" for i in range(10)]


def test_corrupt_image_is_quarantined_and_the_rest_ingested(tmp_path, toy_shards, build):
    broken = [("broken.png", b"\x89PNG garbage"), ("broken.cls", b"1")]
    members = build.samples(["ok1", "ok2"]) + broken
    build.write_shard(toy_shards / "extra-train.tar", members)
    result = DatasetStore(tmp_path / "store").ingest(str(toy_shards), "toy")
    assert result.rows == 42 and result.quarantined == 1
    (line,) = result.quarantine_path.read_text().splitlines()
    bad = json.loads(line)
    assert bad["id"] == "broken" and "cannot decode image" in bad["reason"]
    assert result.quarantine_path.parent == tmp_path / "store" / "toy" / "quarantine"
    assert result.quarantine_path.name.endswith(f"-{result.version}.jsonl")
    assert DatasetStore(tmp_path / "store").resolve("toy").manifest["quarantined"] == 1


def test_truncated_archive_keeps_earlier_records_and_reports(tmp_path, build):
    folder = tmp_path / "shards"
    keys = [f"k{i:03d}" for i in range(300)]
    whole = build.write_shard(folder / "big-train.tar.gz", build.samples(keys))
    build.write_shard(folder / "small-test.tar", build.samples(["t1", "t2"]))
    whole.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    result = DatasetStore(tmp_path / "store").ingest(str(folder), "cut", max_bad_fraction=0.5)
    assert result.quarantined > 0 and 2 < result.rows < 302
    lines = result.quarantine_path.read_text().splitlines()
    reasons = [json.loads(line)["reason"] for line in lines]
    assert any("damaged" in reason for reason in reasons)


def test_duplicate_ids_are_quarantined(tmp_path, build):
    folder = tmp_path / "shards"
    build.write_shard(folder / "a.tar", build.samples(f"k{i}" for i in range(30)))
    build.write_shard(folder / "b.tar", build.samples(["k0"]))
    result = DatasetStore(tmp_path / "store").ingest(str(folder), "dup")
    assert result.rows == 30 and result.quarantined == 1
    assert json.loads(result.quarantine_path.read_text())["reason"] == "duplicate id"


def test_reingest_renamed_and_reordered_shards_gives_the_same_version(tmp_path, toy_shards, build):
    store = DatasetStore(tmp_path / "store")
    first = store.ingest(str(toy_shards), "toy")
    # The same samples: shards renamed (split word kept) and members reversed within each.
    other = tmp_path / "other"
    reversed_members = build.samples(f"a{i:03d}" for i in range(20))[::-1]
    build.write_shard(other / "zz-train-0009.tar", reversed_members)
    build.write_shard(other / "aa-train-0000.tar.gz", build.samples(f"b{i:03d}" for i in range(10)))
    build.write_shard(other / "x-test-5.tar", build.samples(f"t{i:03d}" for i in range(10)))
    before = _snapshot(tmp_path / "store")
    second = store.ingest(str(other), "toy")
    assert second.version == first.version and second.created is False
    assert store.versions("toy") == [first.version]
    assert store.resolve("toy").read().num_rows == 40
    assert _snapshot(tmp_path / "store") == before


def test_changed_input_makes_a_new_version_and_keeps_the_old(tmp_path, toy_shards, build):
    store = DatasetStore(tmp_path / "store")
    old = store.ingest(str(toy_shards), "toy")
    build.write_shard(toy_shards / "more-train.tar", build.samples(["new"]))
    new = store.ingest(str(toy_shards), "toy")
    assert new.version != old.version and new.created
    assert store.versions("toy") == [old.version, new.version]
    assert store.latest("toy") == new.version
    assert store.resolve("toy", old.version).read().num_rows == 40
    assert store.resolve("toy").read().num_rows == 41


def _emptied(folder, build):
    for path in folder.iterdir():
        path.unlink()


def _removed(folder, build):
    _emptied(folder, build)
    folder.rmdir()


def _too_many_bad(folder, build):
    build.write_shard(folder / "junk-train.tar", [(f"j{i}.png", b"junk") for i in range(40)])


@pytest.mark.parametrize(
    "break_source, message",
    [
        (_emptied, "the folder is empty"),
        (_removed, "does not exist"),
        (_too_many_bad, r"40 of 80 records .* are bad \(50.0% > max_bad_fraction 5.0%\)"),
    ],
    ids=["empty-folder", "missing-folder", "too-many-bad"],
)
def test_failure_leaves_previous_version_and_latest_untouched(
    tmp_path, toy_shards, build, break_source, message
):
    store = DatasetStore(tmp_path / "store")
    previous = store.ingest(str(toy_shards), "toy")
    before = {k: v for k, v in _snapshot(tmp_path / "store").items() if "quarantine" not in k}
    break_source(toy_shards, build)
    with pytest.raises(IngestError, match=message):
        store.ingest(str(toy_shards), "toy")
    after = {k: v for k, v in _snapshot(tmp_path / "store").items() if "quarantine" not in k}
    assert after == before
    assert store.latest("toy") == previous.version
    assert store.resolve("toy").read().num_rows == 40
    assert _no_staging_left(tmp_path / "store")


def test_too_many_bad_writes_the_quarantine_it_points_at(tmp_path, toy_shards, build):
    _too_many_bad(toy_shards, build)
    with pytest.raises(IngestError) as raised:
        DatasetStore(tmp_path / "store").ingest(str(toy_shards), "toy")
    (quarantine,) = (tmp_path / "store" / "toy" / "quarantine").iterdir()
    assert quarantine.name.endswith("-failed.jsonl") and str(quarantine) in str(raised.value)
    assert len(quarantine.read_text().splitlines()) == 40
    assert DatasetStore(tmp_path / "store").versions("toy") == []


def test_source_with_only_bad_records_is_empty(tmp_path, build):
    build.write_shard(tmp_path / "shards" / "s.tar", [("a.png", b"junk")])
    with pytest.raises(IngestError, match="is empty: 0 good records, 1 bad"):
        DatasetStore(tmp_path / "store").ingest(str(tmp_path / "shards"), "x", max_bad_fraction=1.0)


def test_a_crash_while_writing_publishes_nothing(tmp_path, toy_shards, monkeypatch):
    store = DatasetStore(tmp_path / "store")
    previous = store.ingest("digits", "toy", limit=10)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "write_parts", crash)
    with pytest.raises(OSError, match="disk full"):
        store.ingest(str(toy_shards), "toy")
    assert store.versions("toy") == [previous.version] and store.latest("toy") == previous.version
    assert _no_staging_left(tmp_path / "store")


def test_limit_parts_and_progress(tmp_path):
    store = DatasetStore(tmp_path, rows_per_file=400, row_group_rows=64)
    seen = []
    result = store.ingest("digits", "digits", limit=1000, progress=seen.append)
    assert result.rows == 1000 and seen[-1] == 1000
    version = store.resolve("digits")
    assert version.manifest["files"] == [f"part-{i:05d}.parquet" for i in range(3)]
    ids = version.read(columns=["id"]).column("id").to_pylist()
    assert ids == stored_order([f"digits-{i:05d}" for i in range(1000)])


def test_image_folder_ingest_keeps_class_names(tmp_path, build):
    for split, names in {"train": ["cat", "dog"], "test": ["dog"]}.items():
        for name in names:
            folder = tmp_path / "images" / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                (folder / f"{i}.png").write_bytes(build.toy_image(i + len(name) * 10, rgb=True))
    result = DatasetStore(tmp_path / "store").ingest(str(tmp_path / "images"), "pets")
    manifest = DatasetStore(tmp_path / "store").resolve("pets").manifest
    assert result.splits == {"train": 6, "test": 3} and result.channels == 3
    assert manifest["class_names"] == ["cat", "dog"] and manifest["num_classes"] == 2
    labels = DatasetStore(tmp_path / "store").resolve("pets").read(split="test").column("label")
    assert pc.unique(labels).to_pylist() == [1]


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "spaced name", "-x"])
def test_invalid_names_are_rejected(tmp_path, name):
    with pytest.raises(ValueError, match="invalid dataset name"):
        DatasetStore(tmp_path).ingest("digits", name)


def test_invalid_max_bad_fraction(tmp_path):
    with pytest.raises(ValueError, match="max_bad_fraction"):
        DatasetStore(tmp_path).ingest("digits", "d", max_bad_fraction=1.5)


def test_resolve_missing_lists_what_exists(tmp_path):
    store = DatasetStore(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="datasets: none"):
        store.resolve("nothing")
    result = store.ingest("digits", "digits", limit=20)
    with pytest.raises(LookupError, match="no dataset 'other'.*datasets: \\['digits'\\]"):
        store.resolve("other")
    with pytest.raises(LookupError, match=f"no version '0123456789abcdef'.*{result.version}"):
        store.resolve("digits", "0123456789abcdef")
    assert store.names() == ["digits"]


# ---- ingest_records: the programmatic entry point ------------------------------------------


def _generated(build, count, *, start=0, split=None):
    """`count` distinct 6x5 gray PNG records with ids gen-00000..., labels i % 3."""
    return [
        ImageRecord(id=f"gen-{i:05d}", image=build.toy_image(i), label=i % 3, split=split)
        for i in range(start, start + count)
    ]


def test_ingest_records_publishes_generated_records(tmp_path, build):
    store = DatasetStore(tmp_path)
    records = _generated(build, 50)
    result = store.ingest_records(
        reversed(records), "gen", description="generated:toy", class_names=["a", "b", "c"]
    )
    assert (result.rows, result.created, result.quarantined, result.channels) == (50, True, 0, 1)
    assert sum(result.splits.values()) == 50
    version = store.resolve("gen")
    assert version.version == result.version and version.num_rows() == 50
    manifest = version.manifest
    assert manifest["source"] == "generated:toy" and manifest["class_names"] == ["a", "b", "c"]
    assert manifest["num_classes"] == 3 and manifest["image_size"] == [6, 5]
    table = version.read()
    order, _ = bucket_order([r.id for r in records])
    stored = [records[i] for i in order]  # (bucket, id) order, not arrival
    assert table.column("id").to_pylist() == [r.id for r in stored]
    assert table.column("image").to_pylist() == [r.image for r in stored]
    assert table.column("split").to_pylist() == [split_for_id(r.id) for r in stored]


def test_ingest_records_same_records_give_the_same_version_and_write_nothing(tmp_path, build):
    store = DatasetStore(tmp_path)
    records = _generated(build, 30)
    first = store.ingest_records(records, "gen", description="generated")
    before = _snapshot(tmp_path / "gen" / first.version)
    # A generator, other order, other description: same content, same version.
    again = store.ingest_records((r for r in records[::-1]), "gen", description="again")
    assert (again.version, again.created, again.rows) == (first.version, False, 30)
    assert _snapshot(tmp_path / "gen" / first.version) == before
    other = store.ingest_records(_generated(build, 31), "gen", description="generated")
    assert other.version != first.version and other.created
    assert store.latest("gen") == other.version and store.versions("gen") == [first.version, other.version]


def test_ingest_records_matches_ingest_of_the_same_source(tmp_path):
    from cl_core.datasets.sources import open_source

    by_source = DatasetStore(tmp_path / "a").ingest("digits", "digits", limit=200)
    opened = open_source("digits", limit=200)
    by_records = DatasetStore(tmp_path / "b").ingest_records(
        opened.records, "digits", description=opened.description
    )
    assert (by_records.version, by_records.rows, by_records.splits) == (
        by_source.version, by_source.rows, by_source.splits
    )
    a = DatasetStore(tmp_path / "a").resolve("digits").manifest
    b = DatasetStore(tmp_path / "b").resolve("digits").manifest
    assert {k: v for k, v in a.items() if k != "created_at"} == {
        k: v for k, v in b.items() if k != "created_at"
    }


def test_ingest_records_quarantines_bad_records(tmp_path, build):
    records = _generated(build, 40) + [
        BadRecord("lost-1", "my-reader", "file vanished"),
        ImageRecord("broken", b"\x89PNG garbage", 1, None),
        ImageRecord("gen-00003", build.toy_image(200), 0, None),  # duplicate id
        ImageRecord("odd-split", build.toy_image(201), 0, "holdout"),
        ImageRecord("no-class", build.toy_image(202), 3, None),  # only 3 class names
        ImageRecord("negative", build.toy_image(203), -1, None),
    ]
    result = DatasetStore(tmp_path).ingest_records(
        records, "gen", description="generated", class_names=["a", "b", "c"], max_bad_fraction=0.2
    )
    assert result.rows == 40 and result.quarantined == 6
    bad = {
        line["id"]: line for line in map(json.loads, result.quarantine_path.read_text().splitlines())
    }
    assert set(bad) == {"lost-1", "broken", "gen-00003", "odd-split", "no-class", "negative"}
    assert bad["lost-1"] == {"id": "lost-1", "source": "my-reader", "reason": "file vanished"}
    assert bad["broken"]["source"] == "generated" and "cannot decode" in bad["broken"]["reason"]
    assert bad["gen-00003"]["reason"] == "duplicate id"
    assert "3 class names" in bad["no-class"]["reason"]
    assert bad["negative"]["reason"].startswith("label -1 is outside")


def test_ingest_records_too_many_bad_publishes_nothing(tmp_path, build):
    store = DatasetStore(tmp_path)
    previous = store.ingest_records(_generated(build, 10), "gen", description="generated")
    before = _snapshot(tmp_path)
    records = _generated(build, 10, start=100) + [BadRecord(f"x{i}", "gen", "bad") for i in range(2)]
    with pytest.raises(IngestError, match="2 of 12 records from generated are bad"):
        store.ingest_records(records, "gen", description="generated")
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if "quarantine" not in k} == before
    assert store.latest("gen") == previous.version and _no_staging_left(tmp_path)
    with pytest.raises(IngestError, match="empty: 0 good records"):
        store.ingest_records([], "gen", description="generated")


def test_ingest_records_rejects_wrong_arguments_and_types(tmp_path, build):
    store = DatasetStore(tmp_path)
    good = _generated(build, 3)
    with pytest.raises(ValueError, match="invalid dataset name"):
        store.ingest_records(good, "a/b", description="generated")
    with pytest.raises(ValueError, match="description"):
        store.ingest_records(good, "gen", description="")
    with pytest.raises(ValueError, match="max_bad_fraction"):
        store.ingest_records(good, "gen", description="generated", max_bad_fraction=-0.1)
    with pytest.raises(ValueError, match="class_names"):
        store.ingest_records(good, "gen", description="generated", class_names="abc")
    with pytest.raises(TypeError, match=r"records\[3\] is a dict"):
        store.ingest_records([*good, {"id": "x"}], "gen", description="generated")
    with pytest.raises(TypeError, match=r"records\[0\] has wrong field types"):
        store.ingest_records([ImageRecord("x", "not bytes", 0, None)], "gen", description="g")
    assert store.names() == [] and _no_staging_left(tmp_path)


def test_ingest_records_reports_progress(tmp_path, build, monkeypatch):
    monkeypatch.setattr(store_module, "PROGRESS_EVERY", 10)
    seen = []
    DatasetStore(tmp_path).ingest_records(
        _generated(build, 25), "gen", description="generated", progress=seen.append
    )
    assert seen == [10, 20, 25]
