"""Where the store keeps each dataset's versions, found with plain file reads (no pyarrow), so a
wrong dataset name fails before anything heavy is imported.

    root/<name>/<version>/manifest.json   one published version (its Parquet parts beside it)
    root/<name>/LATEST                    the latest version id
"""

from __future__ import annotations

import re
from pathlib import Path

from cl_core.datasets.errors import DatasetNotFoundError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
VERSION_PATTERN = re.compile(r"^[0-9a-f]{16}$")
LATEST_FILE = "LATEST"
MANIFEST_FILE = "manifest.json"


def check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid dataset name {name!r}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )


def dataset_names(root: Path) -> list[str]:
    """The datasets that have a published version."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and dataset_versions(root, p.name))


def dataset_versions(root: Path, name: str) -> list[str]:
    """Published versions of `name`, oldest first."""
    check_name(name)
    folder = root / name
    if not folder.is_dir():
        return []
    manifests = [
        p / MANIFEST_FILE
        for p in folder.iterdir()
        if VERSION_PATTERN.match(p.name) and (p / MANIFEST_FILE).is_file()
    ]
    manifests.sort(key=lambda m: (m.stat().st_mtime_ns, m.parent.name))
    return [m.parent.name for m in manifests]


def latest_version(root: Path, name: str) -> str | None:
    """The version LATEST points at, or None when the dataset was never ingested."""
    check_name(name)
    try:
        return (root / name / LATEST_FILE).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def version_folder(root: Path, name: str, version: str | None = None) -> Path:
    """The folder of version `version` of `name`, or of the latest one when `version` is None.

    Raises:
        DatasetNotFoundError: (a LookupError) the dataset or version does not exist; the
            message lists the datasets or versions that do.
    """
    check_name(name)
    if version is None:
        version = latest_version(root, name)
        if version is None:
            raise DatasetNotFoundError(f"no dataset {name!r} in {root}; datasets: {dataset_names(root) or 'none'}")
    path = root / name / version
    if not (VERSION_PATTERN.match(version) and (path / MANIFEST_FILE).is_file()):
        raise DatasetNotFoundError(
            f"no version {version!r} of dataset {name!r} in {root}; "
            f"versions: {dataset_versions(root, name) or 'none'}"
        )
    return path
