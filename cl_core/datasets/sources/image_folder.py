"""A class-per-subfolder image folder, the torchvision `ImageFolder` layout.

    root/<class_name>/**/*.png|jpg|jpeg|bmp|gif                 split from the store's id hash
    root/train|val|test/<class_name>/**/*.png|...               split from the folder

A split folder may also be called dev, valid or validation (all "val": see `splits.py`).

Class indices are positions in the sorted class names (the union over the split folders, so a
class missing from one split keeps the same index everywhere).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from cl_core.datasets.errors import IngestError
from cl_core.datasets.records import BadRecord, ImageRecord
from cl_core.datasets.splits import canonical_split

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


class ImageFolderReader:
    """Reads one image folder; `class_names` is known as soon as it is constructed.

    Raises:
        IngestError: the folder cannot be listed, or mixes split folders with other folders.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        try:
            top = _subfolders(self.root)
        except OSError as error:
            raise IngestError(f"cannot list image folder {self.root}: {error}") from error
        split_dirs = [p for p in top if canonical_split(p.name) is not None]
        # A split layout needs every split folder to hold class folders; otherwise "train" is
        # just a class that happens to be called that.
        if split_dirs and all(_subfolders(p) for p in split_dirs):
            others = [p.name for p in top if p not in split_dirs]
            if others:
                raise IngestError(
                    f"image folder {self.root} mixes split folders "
                    f"({', '.join(p.name for p in split_dirs)}) with other folders "
                    f"({', '.join(others)}); use one layout"
                )
            self.class_dirs = [
                (canonical_split(s.name), c) for s in split_dirs for c in _subfolders(s)
            ]
        else:
            self.class_dirs = [(None, c) for c in top]
        self.class_names: list[str] = sorted({c.name for _, c in self.class_dirs})
        self._index = {name: i for i, name in enumerate(self.class_names)}

    def records(self) -> Iterator[ImageRecord | BadRecord]:
        """Yield every image file in sorted path order; unreadable files become BadRecords."""
        for index in range(len(self.class_dirs)):
            yield from self.class_records(index)

    def class_records(self, index: int) -> Iterator[ImageRecord | BadRecord]:
        """The records of `class_dirs[index]` alone, in sorted path order."""
        split, class_dir = self.class_dirs[index]
        label = self._index[class_dir.name]
        for path in self._image_files(class_dir):
            record_id = path.relative_to(self.root).with_suffix("").as_posix()
            try:
                data = path.read_bytes()
            except OSError as error:
                yield BadRecord(record_id, str(path), f"cannot read file: {error}")
                continue
            yield ImageRecord(id=record_id, image=data, label=label, split=split)

    @staticmethod
    def _image_files(class_dir: Path) -> Iterator[Path]:
        for dirpath, dirnames, filenames in os.walk(class_dir):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # walk in order
            for filename in sorted(filenames):
                path = Path(dirpath, filename)
                if not filename.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES:
                    yield path


def image_folder_classes(root: str | Path) -> list[str]:
    """The sorted class names of the image folder at `root`; index = class label."""
    return ImageFolderReader(root).class_names
