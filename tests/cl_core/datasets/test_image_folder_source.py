"""sources/image_folder.py: class-per-subfolder layouts, with and without split folders."""

from __future__ import annotations

import pytest

from cl_core.datasets.errors import IngestError
from cl_core.datasets.records import ImageRecord
from cl_core.datasets.sources.image_folder import ImageFolderReader, image_folder_classes


def _put(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_flat_layout_labels_ids_and_ignored_files(tmp_path, build):
    _put(tmp_path / "dog" / "1.png", build.toy_image(1))
    _put(tmp_path / "dog" / "nested" / "2.JPG", build.toy_image(2, fmt="JPEG"))
    _put(tmp_path / "cat" / "3.bmp", build.toy_image(3, fmt="BMP"))
    _put(tmp_path / "cat" / "4.gif", build.toy_image(4, fmt="GIF"))
    _put(tmp_path / "cat" / "notes.txt", b"not an image")
    _put(tmp_path / "cat" / ".hidden.png", build.toy_image(5))
    reader = ImageFolderReader(tmp_path)
    assert reader.class_names == ["cat", "dog"]
    records = list(reader.records())
    assert all(isinstance(r, ImageRecord) and r.split is None for r in records)
    assert [(r.id, r.label) for r in records] == [
        ("cat/3", 0),
        ("cat/4", 0),
        ("dog/1", 1),
        ("dog/nested/2", 1),
    ]
    assert records[2].image == build.toy_image(1)


def test_split_layout_takes_split_from_folders_and_shares_class_indices(tmp_path, build):
    _put(tmp_path / "train" / "bird" / "a.png", build.toy_image(1))
    _put(tmp_path / "train" / "cat" / "b.png", build.toy_image(2))
    _put(tmp_path / "valid" / "cat" / "c.png", build.toy_image(3))
    _put(tmp_path / "test" / "cat" / "d.png", build.toy_image(4))
    _put(tmp_path / "test" / "zebra" / "e.png", build.toy_image(5))
    assert image_folder_classes(tmp_path) == ["bird", "cat", "zebra"]
    records = {r.id: r for r in ImageFolderReader(tmp_path).records()}
    assert {i: (r.split, r.label) for i, r in records.items()} == {
        "test/cat/d": ("test", 1),
        "test/zebra/e": ("test", 2),
        "train/bird/a": ("train", 0),
        "train/cat/b": ("train", 1),
        "valid/cat/c": ("val", 1),
    }


def test_a_dev_folder_lands_in_val(tmp_path, build):
    _put(tmp_path / "train" / "cat" / "a.png", build.toy_image(1))
    _put(tmp_path / "dev" / "cat" / "b.png", build.toy_image(2))
    records = {r.id: r.split for r in ImageFolderReader(tmp_path).records()}
    assert records == {"dev/cat/b": "val", "train/cat/a": "train"}


def test_a_class_called_train_is_just_a_class(tmp_path, build):
    _put(tmp_path / "train" / "a.png", build.toy_image(1))
    _put(tmp_path / "other" / "b.png", build.toy_image(2))
    reader = ImageFolderReader(tmp_path)
    assert reader.class_names == ["other", "train"]
    assert [r.split for r in reader.records()] == [None, None]


def test_mixed_layout_is_rejected_naming_the_folders(tmp_path, build):
    _put(tmp_path / "train" / "cat" / "a.png", build.toy_image(1))
    _put(tmp_path / "dog" / "b.png", build.toy_image(2))
    message = r"mixes split folders \(train\) with other folders \(dog\)"
    with pytest.raises(IngestError, match=message):
        ImageFolderReader(tmp_path)
