"""Where images come from: pick a reader from a source string.

    "digits"                       scikit-learn's bundled digits
    a folder holding *.tar shards  WebDataset-style shards
    a folder of subfolders         class-per-subfolder image folder

Every reader yields `ImageRecord`s for what it could read and `BadRecord`s for what it could not;
deciding whether an image decodes is the store's job. Splits come from the shard names or split
folders; a source that names train and test but no val gets `val_fraction` of its train rows as
val (`carved_val`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from cl_core.datasets.errors import IngestError
from cl_core.datasets.records import BadRecord, ImageRecord, first_good
from cl_core.datasets.sources import digits, webdataset
from cl_core.datasets.sources.carved_val import carve_val
from cl_core.datasets.sources.image_folder import ImageFolderReader, image_folder_classes
from cl_core.defaults import VAL_FRACTION


@dataclass
class Source:
    """An opened source: a one-pass record iterator plus what is known about it up front."""

    records: Iterator[ImageRecord | BadRecord]
    description: str  # "sklearn:digits" or the resolved absolute folder path
    class_names: list[str] | None
    kind: str  # "digits", "webdataset" or "image_folder"
    # The same records in parts that can be read independently (a shard, a class folder), in
    # reading order: calling each in turn yields `records`. Picklable, for the `ray` engine.
    units: list[Callable[[], Iterator[ImageRecord | BadRecord]]] = field(default_factory=list)
    # The split each unit's name or folder gives (None: the store's id hash decides), in order.
    named_splits: list[str | None] = field(default_factory=lambda: [None])
    val_carved: bool = False  # whether val was carved from the train rows (`carved_val`)


def open_source(source: str, limit: int | None = None,
                max_member_bytes: int = webdataset.MAX_MEMBER_BYTES, val_fraction: float = VAL_FRACTION) -> Source:
    """Open `source` for one pass.

    Args:
        source: "digits" or a folder path (see the module docstring).
        limit: keep only the first `limit` good records (for small runs), None for all.
        max_member_bytes: tar shards: a member above this is refused unread (a bad record
            naming it and its size; `webdataset.read_shard`).
        val_fraction: a source whose shards or split folders name train but no val gets this
            share of its train rows as val, chosen by a hash of the id (`data.val_fraction`;
            0: none).

    Raises:
        IngestError: the source does not exist, cannot be read, or is none of the known kinds.
        ValueError: `limit` is not a positive integer, or `val_fraction` is outside [0, 1).
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    if source == "digits":
        opened = Source(
            digits.read_digits(), digits.DESCRIPTION, None, "digits", [digits.read_digits]
        )
    else:
        opened = _open_folder(Path(source).expanduser(), max_member_bytes)
    opened.records, opened.units, opened.val_carved = carve_val(opened.records, opened.units, opened.named_splits,
                                                                val_fraction)
    if limit is not None:
        opened.records = first_good(opened.records, limit, ImageRecord)
    return opened


def _open_folder(path: Path, max_member_bytes: int = webdataset.MAX_MEMBER_BYTES) -> Source:
    if not path.exists():
        raise IngestError(f"source {str(path)!r} does not exist (and is not 'digits')")
    folder = path.resolve()
    try:
        entries = list(folder.iterdir()) if folder.is_dir() else None
    except OSError as error:
        raise IngestError(f"source {str(folder)!r} cannot be read: {error}") from error
    if entries and any(webdataset.is_shard(p) for p in entries):
        shards = webdataset.list_shards(folder)
        return Source(
            webdataset.read_shards(shards, max_member_bytes), str(folder), None, "webdataset",
            [partial(webdataset.read_shard, shard, max_member_bytes) for shard in shards],
            [webdataset.split_from_shard_name(shard.name) for shard in shards],
        )
    if entries and any(p.is_dir() and not p.name.startswith(".") for p in entries):
        reader = ImageFolderReader(folder)
        units = [partial(reader.class_records, i) for i in range(len(reader.class_dirs))]
        return Source(reader.records(), str(folder), reader.class_names, "image_folder", units,
                      [split for split, _ in reader.class_dirs])
    if entries is None:
        why = "it is a file, not a folder"
    elif not entries:
        why = "the folder is empty"
    else:
        why = "the folder holds no *.tar/*.tar.gz/*.tgz shard and no class subfolder"
    raise IngestError(
        f"source {str(folder)!r} is not 'digits', a folder of tar shards, or an image folder: {why}"
    )


__all__ = ["Source", "open_source", "image_folder_classes", "ImageFolderReader"]
