"""One embedding table: immutable snapshots and the CURRENT pointer to the live one.

    <root>/<model>/<dataset>/<snapshot id>/part-*.parquet, manifest.json   published snapshots
    <root>/<model>/<dataset>/CURRENT                                       the live snapshot's id
    <root>/<model>/<dataset>/.staging-<snapshot id>/                       a snapshot being written
    <root>/<model>/<dataset>/.lock                                         held by whoever writes

A snapshot is written into a staging folder, fsynced, renamed into place once complete, and only
then named by CURRENT (a temp file, fsync, os.replace, fsync of the folder), so a reader or a crash
sees the old snapshot or the new one, never half of one.

A snapshot counts as published once CURRENT has named it. Ids sort by creation time and each
publish names a snapshot newer than every other, so a snapshot newer than CURRENT was never named:
a writer killed between its rename and CURRENT's move left it. Readers and `prune` ignore such
orphans and staging folders; the next writer, under the lock, removes them and any
`.CURRENT.<hex>` a kill inside the atomic replace left (`remove_leftovers`).

A reader keeps what it opened: `prune` never removes a snapshot that was superseded less than
`snapshot_grace` seconds ago, whatever `keep` says.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from cl_core.defaults import SNAPSHOT_GRACE_S
from cl_core.durable_files import replace_atomically
from cl_core.embeddings.errors import EmbeddingTableError
from cl_core.embeddings.manifest import MANIFEST_FILE, SnapshotManifest, read_manifest

CURRENT_FILE = "CURRENT"
CURRENT_TEMPORARY_PREFIX = f".{CURRENT_FILE}."  # durable_files.replace_atomically's temporary files
LOCK_FILE = ".lock"
STAGING_PREFIX = ".staging-"
# A pruned snapshot is renamed to this first, then deleted: a reader sees it whole or not at all.
PRUNED_PREFIX = ".pruned-"
# UTC time to the microsecond, then random bits: ids sort by creation time and never collide.
SNAPSHOT_PATTERN = re.compile(r"^\d{8}T\d{6}\d{6}Z-[0-9a-f]{8}$")


class SnapshotRemovedError(EmbeddingTableError):
    """The snapshot's folder went while it was opened: `prune` removed it (beyond `keep` and past
    its grace), not damage."""


def new_snapshot_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(4)}"


class Snapshot:
    """A published snapshot folder: its manifest and its Parquet parts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.manifest: SnapshotManifest = read_manifest(path)
        except EmbeddingTableError:
            if not path.is_dir():
                raise SnapshotRemovedError(f"snapshot {path} was removed (pruned) while it was being opened") from None
            raise
        self.files = [path / name for name in self.manifest.files]
        for file in self.files:
            if not file.is_file():
                if not path.is_dir():
                    raise SnapshotRemovedError(f"snapshot {path} was removed (pruned) while it was being opened")
                raise EmbeddingTableError(f"snapshot {path} lists part file {file.name} but it is missing")

    @property
    def id(self) -> str:
        return self.path.name

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """All rows in memory; a corrupt part file fails with the snapshot's path named."""
        try:
            return self.dataset().to_table(columns=columns)
        except EmbeddingTableError:
            raise
        except Exception as error:  # noqa: BLE001 - pyarrow raises several types for bad files
            raise EmbeddingTableError(f"snapshot {self.path} has an unreadable part file: {error}".replace("\n", " ")) from None

    def dataset(self) -> ds.Dataset:
        """The snapshot's rows; a corrupt part file fails here with its path named."""
        try:
            return ds.dataset([str(f) for f in self.files], format="parquet")
        except Exception as error:  # noqa: BLE001 - pyarrow raises several types for bad files
            raise EmbeddingTableError(f"snapshot {self.path} has an unreadable part file: {error}".replace("\n", " ")) from None


class EmbeddingTable:
    """The table of one (model name, dataset name) under `root` (the workspace's embeddings/).
    `snapshot_grace`: seconds a superseded snapshot is kept for the readers that opened it."""

    def __init__(self, root: str | Path, model_name: str, dataset_name: str,
                 snapshot_grace: float = SNAPSHOT_GRACE_S) -> None:
        for what, name in (("model", model_name), ("dataset", dataset_name)):
            if not name or "/" in name or name.startswith("."):
                raise ValueError(f"{what} name {name!r} cannot name a table folder")
        if snapshot_grace < 0:
            raise ValueError(f"snapshot_grace must be >= 0 seconds, got {snapshot_grace}")
        self.path = Path(root) / model_name / dataset_name
        self.model_name, self.dataset_name = model_name, dataset_name
        self.snapshot_grace = snapshot_grace

    def __repr__(self) -> str:
        return f"EmbeddingTable({str(self.path)!r})"

    # ---- reading -------------------------------------------------------------------------

    def current_id(self) -> str | None:
        try:
            text = (self.path / CURRENT_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        if not SNAPSHOT_PATTERN.match(text):
            raise EmbeddingTableError(f"{self.path / CURRENT_FILE} is corrupt: {text[:60]!r} is not a snapshot id")
        return text

    def current(self) -> Snapshot | None:
        """The snapshot CURRENT names, or None before the first publish."""
        snapshot_id = self.current_id()
        if snapshot_id is None:
            return None
        path = self.path / snapshot_id
        if not path.is_dir():
            raise EmbeddingTableError(f"{self.path / CURRENT_FILE} names snapshot {snapshot_id} but {path} is missing")
        return Snapshot(path)

    def _snapshot_folders(self) -> list[str]:
        """Every snapshot folder, orphans included, oldest first."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if SNAPSHOT_PATTERN.match(p.name) and (p / MANIFEST_FILE).is_file())

    def snapshot_ids(self) -> list[str]:
        """Published snapshots (CURRENT and those it named before), oldest first; a folder newer
        than CURRENT was never named (an orphan, or a publish in its last step) and is left out."""
        current = self.current_id()
        return [s for s in self._snapshot_folders() if current is not None and s <= current]

    # ---- writing (hold `lock()` around all of these) -------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive for this table across processes: a second writer waits here until the
        first has published (the kernel releases it if the holder dies)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK_FILE, "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def staging_path(self, snapshot_id: str) -> Path:
        return self.path / f"{STAGING_PREFIX}{snapshot_id}"

    def remove_leftovers(self) -> list[str]:
        """Remove what runs killed before they published left: staging folders, snapshots that
        CURRENT never named (newer than it), CURRENT's temporary files, pruned folders half deleted.
        Returns their names.
        Only under `lock()`: a live writer's renamed snapshot is newer than CURRENT for a moment."""
        if not self.path.is_dir():
            return []
        current = self.current_id()
        removed = []
        for entry in sorted(self.path.iterdir()):
            name = entry.name
            if name.startswith((STAGING_PREFIX, PRUNED_PREFIX)) or (
                    SNAPSHOT_PATTERN.match(name) and (current is None or name > current)):
                shutil.rmtree(entry, ignore_errors=True)
            elif name.startswith(CURRENT_TEMPORARY_PREFIX):
                entry.unlink(missing_ok=True)
            else:
                continue
            removed.append(name)
        return removed

    def set_current(self, snapshot_id: str) -> None:
        """Point CURRENT at a published snapshot, atomically and durably."""
        if not (self.path / snapshot_id / MANIFEST_FILE).is_file():
            raise EmbeddingTableError(f"cannot point CURRENT at {self.path / snapshot_id}: it is not a published snapshot")
        replace_atomically(self.path / CURRENT_FILE, snapshot_id + "\n")

    def prune(self, keep: int) -> list[str]:
        """Remove published snapshots beyond the newest `keep`, except CURRENT and any superseded
        less than `snapshot_grace` seconds ago (a reader may still be reading it); returns the
        ids removed. Call it only after CURRENT names the new snapshot."""
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        published = self.snapshot_ids()
        now = datetime.now(UTC)
        removed = []
        for older, newer in zip(published[:-keep], published[1:], strict=False):
            superseded = datetime.fromisoformat(read_manifest(self.path / newer).created_at)
            if (now - superseded).total_seconds() >= self.snapshot_grace:
                doomed = self.path / f"{PRUNED_PREFIX}{older}"
                os.rename(self.path / older, doomed)
                shutil.rmtree(doomed, ignore_errors=True)
                removed.append(older)
        return removed


def open_current(embeddings_root: str | Path, model_name: str, dataset_name: str) -> ds.Dataset:
    """The current snapshot of a table as a `pyarrow.dataset.Dataset`.

    `embeddings_root` is the workspace's `embeddings/` folder (or the workspace itself).

    Raises:
        EmbeddingTableError: no snapshot was published yet, or the table is damaged.
    """
    root = Path(embeddings_root)
    if not (root / model_name).is_dir() and (root / "embeddings").is_dir():
        root = root / "embeddings"
    table = EmbeddingTable(root, model_name, dataset_name)
    snapshot = table.current()
    if snapshot is None:
        raise EmbeddingTableError(f"no embedding table for model {model_name!r} and dataset {dataset_name!r} at {table.path}")
    return snapshot.dataset()
