"""A folder of WebDataset-style tar shards: `<key>.png|jpg|jpeg` + `<key>.cls` per sample.

Shards are read member by member from the (possibly compressed) stream and never extracted to
disk. As in WebDataset, a sample is a run of consecutive members sharing a key (the member path
up to the first dot of its file name), so memory holds one sample at a time, not one shard.
A damaged shard yields the samples read before the damage and then one `BadRecord` naming the
shard, so the loss is counted instead of crashing the ingest.

Memory stays bounded whatever a shard holds. Only the fields this reader uses (the image and
`.cls`) are read; any other member is skipped unread. A used member larger than
`max_member_bytes` (`data.max_member_bytes`, default 64 MiB) is refused from its header, before
a byte of it is read: one `BadRecord` with its name and size. In a plain tar it is skipped by a
seek and the shard goes on; in a compressed shard every later member lies behind it in the
stream, so reaching them would mean decompressing it (a gzip bomb): there any member above the
limit, used or not, ends that shard's reading, the samples before it kept. Header members that
tarfile reads whole itself (pax extended headers, GNU long names) are held to the same limit.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from cl_core.datasets.errors import IngestError
from cl_core.datasets.records import BadRecord, ImageRecord
from cl_core.datasets.splits import split_in_name
from cl_core.defaults import MAX_MEMBER_BYTES  # the largest member read into memory

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
IMAGE_FIELDS = ("png", "jpg", "jpeg")
LABEL_FIELD = "cls"
USED_FIELDS = frozenset((*IMAGE_FIELDS, LABEL_FIELD))

# What a damaged archive or compressed stream raises while being read.
_ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)


class MemberTooLarge(tarfile.TarError):
    """A member (or a header tarfile would read whole) above `max_member_bytes`."""

    def __init__(self, name: str, size: int, limit: int, what: str = "member") -> None:
        super().__init__(f"{what} {name!r} is {size} bytes, above the limit of {limit} bytes "
                         "(data.max_member_bytes)")
        self.name, self.size = name, size


# tarfile reads these header members whole, before the member they describe is returned.
_WHOLE_HEADER_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
                       tarfile.SOLARIS_XHDTYPE)


def _bounded_tarinfo(limit: int) -> type[tarfile.TarInfo]:
    """A TarInfo class that refuses a long-name or pax header above `limit` before tarfile
    reads it into memory."""

    class BoundedTarInfo(tarfile.TarInfo):
        def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
            if self.type in _WHOLE_HEADER_TYPES and self.size > limit:
                raise MemberTooLarge(self.name, self.size, limit, "header member")
            return super()._proc_member(tar)

    return BoundedTarInfo


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


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The archive's members in order, without the list of every member read so far that
    iterating a TarFile keeps (a shard of millions of tiny members would fill memory with it)."""
    while (member := tar.next()) is not None:
        tar.members.clear()
        yield member


def read_shard(path: Path, max_member_bytes: int = MAX_MEMBER_BYTES) -> Iterator[ImageRecord | BadRecord]:
    """Yield the samples of one shard in archive order, then a BadRecord if it is damaged.

    Only the image and `.cls` members are read; one above `max_member_bytes` is refused unread
    (a BadRecord with its name and size; see the module docstring for what follows it)."""
    if max_member_bytes < 1:
        raise ValueError(f"max_member_bytes must be >= 1, got {max_member_bytes!r}")
    shard = str(path)
    split = split_from_shard_name(path.name)
    done = 0
    key, fields, refused = None, {}, False
    try:
        with tarfile.open(path, "r:*", tarinfo=_bounded_tarinfo(max_member_bytes)) as tar:
            compressed = isinstance(tar.fileobj, (gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile))
            for member in _members(tar):
                if not member.isfile():
                    continue
                member_key, field = _split_member_name(member.name)
                if member_key != key:
                    if key is not None and not refused:
                        yield _sample(key, fields, split, shard)
                        done += 1
                    key, fields, refused = member_key, {}, False
                used = field in USED_FIELDS
                if member.size > max_member_bytes and (used or compressed):
                    reason = str(MemberTooLarge(member.name, member.size, max_member_bytes))
                    if compressed:
                        # Everything after it is behind it in the stream: stop here, unread.
                        yield BadRecord(member.name, shard, f"{reason}; the compressed shard's later members "
                                                            f"were not read (after {done} complete samples)")
                        return
                    yield BadRecord(member.name, shard, reason)
                    refused = True  # the sample is this one bad record, not a second one without its image
                    continue
                if field in fields:
                    yield BadRecord(member.name, shard, f"second .{field} member for key {key!r}")
                    continue
                # An unused field is remembered by name only (for "found: ..."), never read.
                fields[field] = tar.extractfile(member).read() if used else None
            _check_end_of_archive(tar)
    except _ARCHIVE_ERRORS as error:
        # The sample in progress is kept only if it has everything this reader uses; without
        # its .cls it might be an unlabeled image or a labeled one cut short, so it is dropped.
        dropped = ""
        if key is not None and not refused and LABEL_FIELD in fields and any(f in fields for f in IMAGE_FIELDS):
            yield _sample(key, fields, split, shard)
            done += 1
        elif key is not None and not refused:
            dropped = f"; incomplete sample {key!r} was dropped"
        if isinstance(error, MemberTooLarge):
            yield BadRecord(error.name, shard, f"{error}; the shard's later members were not read "
                                               f"(after {done} complete samples{dropped})")
            return
        yield BadRecord(
            shard,
            shard,
            f"archive damaged after {done} complete samples{dropped}: "
            f"{type(error).__name__}: {error}",
        )
        return
    if key is not None and not refused:
        yield _sample(key, fields, split, shard)


def read_shards(shards: Iterable[Path], max_member_bytes: int = MAX_MEMBER_BYTES) -> Iterator[ImageRecord | BadRecord]:
    """Yield every shard's samples, shard after shard."""
    for path in shards:
        yield from read_shard(path, max_member_bytes)
