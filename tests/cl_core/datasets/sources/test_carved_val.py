"""carved_val.py: a source that names train and test but no val gets `val_fraction` of its train rows
as val, chosen by id; a source with its own val, or with rows left to the id hash, is left alone."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from cl_core.datasets import DatasetStore, TextSourceSpec, open_text_source
from cl_core.datasets.records import BadRecord, ImageRecord
from cl_core.datasets.sources import open_source
from cl_core.datasets.sources.carved_val import carve_val, with_carved_val
from cl_core.datasets.splits import in_carved_val

STS = TextSourceSpec(text_columns=(5, 6), score_column=4)


def _image_folder(root: Path, build, splits=("train", "test"), per_class=None) -> Path:
    per_class = per_class or {"train": 60, "val": 5, "test": 10}
    for split in splits:
        for label, name in enumerate(["cat", "dog"]):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class[split]):
                (folder / f"{i:03d}.png").write_bytes(build.toy_image(i + 100 * label))
    return root


def _ids(store: DatasetStore, name: str, split: str) -> set[str]:
    return set(store.resolve(name).read(split=split, columns=["id"]).column("id").to_pylist())


def test_a_train_and_test_image_folder_gets_a_tenth_of_train_as_val_the_same_each_time(tmp_path, build):
    source = str(_image_folder(tmp_path / "pets", build))
    first = DatasetStore(tmp_path / "a").ingest(source, "pets")
    assert first.rows == 140 and first.splits["test"] == 20
    assert first.splits["train"] + first.splits["val"] == 120 and 4 <= first.splits["val"] <= 24
    store = DatasetStore(tmp_path / "a")
    val = _ids(store, "pets", "val")
    train_folder = {f"train/{name}/{i:03d}" for name in ("cat", "dog") for i in range(60)}
    assert val == {i for i in train_folder if in_carved_val(i, 0.1)}  # chosen by id, from train only
    assert _ids(store, "pets", "train") == train_folder - val

    again = store.ingest(source, "pets")
    elsewhere = DatasetStore(tmp_path / "b").ingest(source, "pets")
    assert (again.version, again.created, again.splits) == (first.version, False, first.splits)
    assert (elsewhere.version, elsewhere.splits) == (first.version, first.splits)
    assert _ids(DatasetStore(tmp_path / "b"), "pets", "val") == val


def test_val_fraction_sets_the_share_and_zero_turns_it_off(tmp_path, build):
    source = str(_image_folder(tmp_path / "pets", build))
    store = DatasetStore(tmp_path / "store")
    carved = store.ingest(source, "pets")
    off = store.ingest(source, "off", val_fraction=0)
    more = store.ingest(source, "more", val_fraction=0.3)
    assert off.splits == {"train": 120, "test": 20} and off.version != carved.version
    assert 25 <= more.splits["val"] <= 50 and _ids(store, "pets", "val") < _ids(store, "more", "val")


def test_a_source_with_its_own_val_is_left_alone(tmp_path, build):
    source = str(_image_folder(tmp_path / "pets", build, splits=("train", "val", "test")))
    opened = open_source(source)
    assert not opened.val_carved
    result = DatasetStore(tmp_path / "store").ingest(source, "pets")
    assert result.splits == {"train": 120, "val": 10, "test": 20}


def test_sources_that_leave_the_split_to_the_id_hash_are_left_alone(tmp_path, build):
    flat = tmp_path / "flat"
    for label, name in enumerate(["cat", "dog"]):
        (flat / name).mkdir(parents=True)
        for i in range(5):
            (flat / name / f"{i}.png").write_bytes(build.toy_image(i + 10 * label))
    assert not open_source(str(flat)).val_carved
    assert not open_source("digits").val_carved


def test_train_and_test_shards_get_val_in_records_and_in_every_unit(tmp_path, build):
    shards = build.toy_shard_folder(tmp_path / "shards")  # toy-train-*.tar(.gz), toy-test-0000.tar
    opened = open_source(str(shards))
    assert opened.val_carved and opened.named_splits == ["test", "train", "train"]  # shards in name order
    records = list(opened.records)
    by_units = [record for unit in pickle.loads(pickle.dumps(opened.units)) for record in unit()]  # as Ray does
    assert [(r.id, r.split) for r in by_units] == [(r.id, r.split) for r in records]
    val = {r.id for r in records if r.split == "val"}
    assert val and val == {r.id for r in records if not r.id.startswith("t") and in_carved_val(r.id, 0.1)}
    assert {r.split for r in records if r.id.startswith("t")} == {"test"}


def test_a_limit_applies_after_the_carving(tmp_path, build):
    shards = build.toy_shard_folder(tmp_path / "shards")
    full = [(r.id, r.split) for r in open_source(str(shards)).records]
    assert [(r.id, r.split) for r in open_source(str(shards), limit=25).records] == full[:25]


def test_with_carved_val_passes_bad_records_and_other_splits():
    bad = BadRecord("shard.tar", "shard.tar", "damaged")
    chosen = next(f"k{i}" for i in range(1000) if in_carved_val(f"k{i}", 0.5))
    records = [bad, ImageRecord(chosen, b"x", 1, "train"), ImageRecord(chosen + "t", b"x", 1, "test")]
    assert [getattr(r, "split", None) for r in with_carved_val(records, 0.5)] == [None, "val", "test"]


def test_closing_the_carved_records_closes_the_readers_iterator():
    closed = []

    def reader():
        try:
            yield ImageRecord("a", b"x", 0, "train")
            yield ImageRecord("b", b"x", 0, "train")
        finally:
            closed.append(True)

    carved = with_carved_val(reader(), 0.1)
    next(carved)
    carved.close()
    assert closed == [True]


def test_a_bad_val_fraction_fails_before_reading(tmp_path, build):
    with pytest.raises(ValueError, match="data.val_fraction"):
        open_source(str(build.toy_shard_folder(tmp_path / "shards")), val_fraction=1.0)
    with pytest.raises(ValueError, match="data.val_fraction"):
        carve_val(iter([]), [], ["train"], -0.5)


# ---- text: the split a file name gives --------------------------------------------------------


def _sts(folder: Path, name: str, count: int, start: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"g\tf\t2012\t{i:04d}\t{i % 6}\tfirst {i}\tsecond {i}" for i in range(start, start + count)]
    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_train_and_test_text_files_get_val_and_a_dev_file_keeps_its_own(tmp_path):
    _sts(tmp_path / "pairs", "sts-train.csv", 200)
    _sts(tmp_path / "pairs", "sts-test.csv", 30, start=500)
    store = DatasetStore(tmp_path / "store")
    carved = store.ingest_text(tmp_path / "pairs", "pairs", STS)
    assert carved.splits["test"] == 30 and carved.splits["train"] + carved.splits["val"] == 200
    assert 8 <= carved.splits["val"] <= 35
    assert _ids(store, "pairs", "val") == {f"sts-train:{n:06d}" for n in range(1, 201)
                                           if in_carved_val(f"sts-train:{n:06d}", 0.1)}
    assert store.ingest_text(tmp_path / "pairs", "pairs", STS).version == carved.version

    _sts(tmp_path / "pairs", "sts-dev.csv", 20, start=800)
    assert store.ingest_text(tmp_path / "pairs", "with-dev", STS).splits == {"train": 200, "val": 20, "test": 30}


def test_a_text_source_split_by_a_column_is_left_alone(tmp_path):
    folder = tmp_path / "pairs"
    folder.mkdir()
    rows = [f"{i}\tfirst {i}\tsecond {i}\t{'test' if i % 4 == 0 else 'train'}" for i in range(40)]
    (folder / "pairs-train.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    spec = TextSourceSpec(id_column=0, text_columns=(1, 2), split_column=3)
    opened = open_text_source(folder, spec)
    assert not opened.val_carved
    assert {r.split for r in opened.records} == {"train", "test"}
