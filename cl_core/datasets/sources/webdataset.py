"""A folder of WebDataset-style tar shards: `<key>.png|jpg|jpeg` + `<key>.cls` per sample.

Shards are read member by member from the (possibly compressed) stream and never extracted to
disk. As in WebDataset, a sample is a run of consecutive members sharing a key (the member path
up to the first dot of its file name), so memory holds one sample at a time, not one shard.
A damaged shard yields the samples read before the damage and then one `BadRecord` naming the
shard, so the loss is counted instead of crashing the ingest.
"""

from __future__ import annotations

import lzma
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from cl_core.datasets.errors import IngestError
from cl_core.datasets.records import BadRecord, ImageRecord
from cl_core.datasets.splits import split_in_name

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
IMAGE_FIELDS = ("png", "jpg", "jpeg")
LABEL_FIELD = "cls"

# What a damaged archive or compressed stream raises while being read.
_ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)

def is_shard(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(SHARD_SUFFIXES)


def list_shards(folder: Path) -> list[Path]:
    """The shard files directly inside `folder`, sorted by name.

    Raises:
        IngestError: the folder holds no `*.tar`, `*.tar.gz` or `*.tgz` file.
    """
    shards = sorted(p for p in Path(folder).iterdir() if is_shard(p))
    if not shards:
        raise IngestError(f"no tar shards (*.tar, *.tar.gz, *.tgz) in folder {folder}")
    return shards


def split_from_shard_name(name: str) -> str | None:
    """`toy-train-0000.tar.gz` -> "train", `x_test.tar` -> "test", `a-dev-1.tgz` -> "val"
    (`cl_core.datasets.splits`)."""
    return split_in_name(name)


def _split_member_name(name: str) -> tuple[str, str]:
    """`dir/abc.seg.png` -> ("dir/abc", "seg.png"): key and field, WebDataset's first-dot rule."""
    # Plain string operations: this runs for every member and PurePosixPath is several times
    # slower. "./" is what `tar -C dir .` prefixes; it is not part of the key.
    name = name.removeprefix("./")
    folder, slash, filename = name.rpartition("/")
    stem, _, field = filename.partition(".")
    return folder + slash + stem, field.lower()


def _sample(key: str, fields: dict[str, bytes], split: str | None, shard: str):
    """Turn one key's members into an ImageRecord, or a BadRecord saying what is wrong."""
    image_field = next((f for f in IMAGE_FIELDS if f in fields), None)
    if image_field is None:
        found = ", ".join(sorted(fields)) or "nothing"
        return BadRecord(key, shard, f"no .png/.jpg/.jpeg member for key (found: {found})")
    label = None
    if LABEL_FIELD in fields:
        text = fields[LABEL_FIELD].decode("utf-8", errors="replace").strip()
        try:
            label = int(text)
        except ValueError:
            return BadRecord(key, shard, f".cls is not an integer class index: {text[:40]!r}")
        if label < 0:
            return BadRecord(key, shard, f".cls is a negative class index: {label}")
    return ImageRecord(id=key, image=fields[image_field], label=label, split=split)


def _check_end_of_archive(tar: tarfile.TarFile) -> None:
    """Raise if the archive stopped without its end marker.

    tarfile treats a short or garbled header after the first member as a normal end, so a shard
    cut at a member boundary would otherwise pass as complete. A whole archive ends with a zero
    block; reading on to the end also makes gzip verify its checksum.
    """
    stream = tar.fileobj
    stream.seek(tar.offset)
    block = stream.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE or block.count(0) != tarfile.BLOCKSIZE:
        raise tarfile.ReadError("archive ends without its end-of-archive block (truncated?)")
    while stream.read(1 << 20):
        pass


def read_shard(path: Path) -> Iterator[ImageRecord | BadRecord]:
    """Yield the samples of one shard in archive order, then a BadRecord if it is damaged."""
    shard = str(path)
    split = split_from_shard_name(path.name)
    done = 0
    key, fields = None, {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                member_key, field = _split_member_name(member.name)
                if member_key != key:
                    if key is not None:
                        yield _sample(key, fields, split, shard)
                        done += 1
                    key, fields = member_key, {}
                data = tar.extractfile(member).read()
                if field in fields:
                    yield BadRecord(member.name, shard, f"second .{field} member for key {key!r}")
                    continue
                fields[field] = data
            _check_end_of_archive(tar)
    except _ARCHIVE_ERRORS as error:
        # The sample in progress is kept only if it has everything this reader uses; without
        # its .cls it might be an unlabeled image or a labeled one cut short, so it is dropped.
        dropped = ""
        if key is not None and LABEL_FIELD in fields and any(f in fields for f in IMAGE_FIELDS):
            yield _sample(key, fields, split, shard)
            done += 1
        elif key is not None:
            dropped = f"; incomplete sample {key!r} was dropped"
        yield BadRecord(
            shard,
            shard,
            f"archive damaged after {done} complete samples{dropped}: "
            f"{type(error).__name__}: {error}",
        )
        return
    if key is not None:
        yield _sample(key, fields, split, shard)


def read_shards(shards: Iterable[Path]) -> Iterator[ImageRecord | BadRecord]:
    """Yield every shard's samples, shard after shard."""
    for path in shards:
        yield from read_shard(path)
