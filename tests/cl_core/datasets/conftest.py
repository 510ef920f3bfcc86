"""Builders for small image files, tar shards and image folders, plus the shared-data locator."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[3]


def encode(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    """Encode a uint8 (H, W) or (H, W, 3) array."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def toy_image(
    value: int, size: tuple[int, int] = (6, 5), fmt: str = "PNG", rgb: bool = False
) -> bytes:
    """A flat image of gray level `value`; distinct values give distinct bytes."""
    shape = (*size, 3) if rgb else size
    return encode(np.full(shape, value % 256, dtype=np.uint8), fmt)


def write_shard(path: Path, members: Iterable[tuple[str, bytes]]) -> Path:
    """Write a tar (gzipped when the name ends in .gz/.tgz) holding `members` in order."""
    mode = "w:gz" if path.name.endswith((".gz", ".tgz")) else "w"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def samples(keys: Iterable[str], label: Callable[[int], int] = lambda i: i % 3, fmt: str = "png"):
    """Members `<key>.<fmt>` + `<key>.cls` for each key; the i-th key gets label(i)."""
    pil_format = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG"}[fmt]
    members = []
    for i, key in enumerate(keys):
        members.append((f"{key}.{fmt}", toy_image(i * 7 + len(key), fmt=pil_format)))
        members.append((f"{key}.cls", str(label(i)).encode()))
    return members


def toy_shard_folder(folder: Path) -> Path:
    """20 train samples in a .tar.gz + 10 in a .tar, 10 test samples in a .tar; labels i % 3."""
    write_shard(folder / "toy-train-0000.tar.gz", samples(f"a{i:03d}" for i in range(20)))
    write_shard(folder / "toy-train-0001.tar", samples(f"b{i:03d}" for i in range(10)))
    write_shard(folder / "toy-test-0000.tar", samples(f"t{i:03d}" for i in range(10)))
    return folder


@pytest.fixture
def toy_shards(tmp_path: Path) -> Path:
    return toy_shard_folder(tmp_path / "shards")


@pytest.fixture
def shared_data() -> Callable[[str], Path]:
    """`shared_data("mnist")` -> the folder, or skip the test saying where it was looked for."""

    def locate(subfolder: str) -> Path:
        base = Path(os.environ.get("CLPIPE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
        path = base / subfolder
        if not path.is_dir():
            pytest.skip(f"shared data {subfolder!r} not found at {path}; set CLPIPE_SHARED_DATA")
        return path

    return locate


@pytest.fixture
def build() -> SimpleNamespace:
    """The builders above, for tests (conftest modules are not importable by name)."""
    return SimpleNamespace(
        encode=encode,
        toy_image=toy_image,
        write_shard=write_shard,
        samples=samples,
        toy_shard_folder=toy_shard_folder,
    )
