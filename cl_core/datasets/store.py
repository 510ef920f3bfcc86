"""The versioned dataset store: ingest a source into an immutable, content-addressed version.

    root/<name>/<version>/part-00000.parquet ... manifest.json    one published version
    root/<name>/LATEST                                             the latest version id
    root/<name>/quarantine/<timestamp>-<version|failed>.jsonl      records that did not ingest

A dataset holds images (`ingest`, `ingest_records`), text pairs (`ingest_text`,
`ingest_text_records`) or user-item interactions (`ingest_interactions`). Each kind's ingest lives
beside its sources (`sources/image_ingest.py`, `sources/text/ingest.py`,
`sources/interactions/ingest.py`) as functions taking the store; the methods of those names call
them, importing them on first use (they build on this module). This module is the generic part:
one pass of validation (`ingest_rows`: the checks every kind shares, the kind's own in its rows
object, `ImageRows` or `TextRows`), quarantine, the kind check, staging and the atomic publish
(`publish_version`, `ingest_buckets`), LATEST and `resolve`. Interactions are split by time once
all are read, and a version holds their users and items tables beside them
(`cl_core.datasets.sources.interactions.rows`). The version id of images and
text hashes the content bucket by bucket (`cl_core.datasets.version_id`), so the same rows give
the same version whatever the file order or names or the engine that ingested them (the `ray`
engine writes the buckets where they were grouped, then `ingest_buckets` publishes them), and
re-ingesting writes nothing. Rows are stored in (bucket, id) order. A version becomes visible through a single rename of a
fully written folder, so a crash never shows half a dataset, and a failed ingest leaves every
existing version and LATEST as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cl_core.datasets.dataset_version import DatasetVersion
from cl_core.datasets.errors import IngestError
from cl_core.datasets.ingest_result import PROGRESS_EVERY, IngestResult, check_description, check_ingest_args
from cl_core.datasets.layout import (
    LATEST_FILE,
    MANIFEST_FILE,
    dataset_names,
    dataset_versions,
    latest_version,
    version_folder,
)
from cl_core.datasets.manifest import manifest_kind, read_manifest, write_manifest
from cl_core.datasets.parquet_parts import write_parts
from cl_core.datasets.records import SPLITS, BadRecord
from cl_core.datasets.splits import split_for_id
from cl_core.datasets.version_id import BUCKETS, combine, empty_bucket_digest
from cl_core.durable_files import fsync_dir, replace_atomically
from cl_core.modalities import modality

if TYPE_CHECKING:
    from cl_core.datasets.buckets import BucketResult
    from cl_core.datasets.image_rows import ImageRows
    from cl_core.datasets.sources.text.rows import TextRows

__all__ = ["PROGRESS_EVERY", "QUARANTINE_DIR", "DatasetStore", "IngestResult"]

QUARANTINE_DIR = "quarantine"


class DatasetStore:
    """Datasets under `root`, each a series of immutable versions.

    Args:
        root: the store folder; created on the first ingest.
        rows_per_file: most rows in one Parquet part file.
        row_group_rows: rows per Parquet row group, the unit `iter_batches` streams.
    """

    def __init__(
        self, root: str | Path, *, rows_per_file: int = 100_000, row_group_rows: int = 8192
    ) -> None:
        if rows_per_file < 1 or row_group_rows < 1:
            raise ValueError(
                f"rows_per_file and row_group_rows must be >= 1, got {rows_per_file}, "
                f"{row_group_rows}"
            )
        self.root = Path(root)
        self.rows_per_file = rows_per_file
        self.row_group_rows = row_group_rows

    # ---- reading -------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The datasets that have a published version."""
        return dataset_names(self.root)

    def versions(self, name: str) -> list[str]:
        """Published versions of `name`, oldest first."""
        return dataset_versions(self.root, name)

    def latest(self, name: str) -> str | None:
        """The version LATEST points at, or None when the dataset was never ingested."""
        return latest_version(self.root, name)

    def resolve(self, name: str, version: str | None = None) -> DatasetVersion:
        """Open version `version` of `name`, or the latest one when `version` is None.

        Raises:
            DatasetNotFoundError: (a LookupError) the dataset or version does not exist; the
                message lists the datasets or versions that do.
        """
        return DatasetVersion(version_folder(self.root, name, version))

    # ---- ingest, one kind at a time: the functions beside each kind's sources -------------

    def ingest(self, source: str, name: str, **options: Any) -> IngestResult:
        """Images from "digits", a folder of tar shards or an image folder; options `limit`,
        `max_bad_fraction`, `progress`, `max_member_bytes`: see
        `cl_core.datasets.sources.image_ingest.ingest_images`."""
        from cl_core.datasets.sources.image_ingest import ingest_images

        return ingest_images(self, source, name, **options)

    def ingest_records(self, records: Iterable[Any], name: str, **options: Any) -> IngestResult:
        """`ImageRecord`s and `BadRecord`s made in code; options `description` (required),
        `class_names`, `max_bad_fraction`, `progress`: see `image_ingest.ingest_image_records`."""
        from cl_core.datasets.sources.image_ingest import ingest_image_records

        return ingest_image_records(self, records, name, **options)

    def ingest_text(self, source: str | Path, name: str, spec: Any, **options: Any) -> IngestResult:
        """Sentence pairs read as the `TextSourceSpec` `spec` says; options `limit`,
        `max_bad_fraction`, `progress`: see `cl_core.datasets.sources.text.ingest.ingest_text`."""
        from cl_core.datasets.sources.text.ingest import ingest_text

        return ingest_text(self, source, name, spec, **options)

    def ingest_text_records(self, records: Iterable[Any], name: str, **options: Any) -> IngestResult:
        """`TextPairRecord`s and `BadRecord`s made in code; options `description` (required),
        `max_bad_fraction`, `progress`: see `text.ingest.ingest_text_records`."""
        from cl_core.datasets.sources.text.ingest import ingest_text_records

        return ingest_text_records(self, records, name, **options)

    def ingest_interactions(self, source: str | Path, name: str, spec: Any, **options: Any) -> IngestResult:
        """User-item interactions and side tables read as the `InteractionsSourceSpec` `spec`
        says; options `limit`, `max_bad_fraction`, `progress`: see
        `cl_core.datasets.sources.interactions.ingest.ingest_interactions`."""
        from cl_core.datasets.sources.interactions.ingest import ingest_interactions

        return ingest_interactions(self, source, name, spec, **options)

    # ---- ingest, every kind: what the functions above build on -----------------------------

    def ingest_rows(
        self,
        records: Iterable[Any],
        rows: ImageRows | TextRows,
        name: str,
        *,
        description: str,
        max_bad_fraction: float,
        progress: Callable[[int], None] | None = None,
        started: float | None = None,
    ) -> IngestResult:
        """Validate `records` in one pass and publish the good ones as a version of `name`.

        `rows` is an empty `ImageRows` or `TextRows`: the kind-specific checks and table. The
        checks every kind shares are here (`BadRecord`s, duplicate ids, unknown splits; rows
        without a split get `split_for_id(id)`); too many bad records or none good fail with
        the quarantine written; the version id is the table's, and an existing version is not
        written again (`created=False`).

        Args:
            records: the kind's records and `BadRecord`s; any iterable, read once.
            rows: see above.
            name: the dataset name.
            description: the source, for the manifest, messages and quarantine entries.
            max_bad_fraction: fail when bad / (good + bad) exceeds this.
            progress: called with the number of records seen, every few thousand records.
            started: `time.perf_counter()` when the ingest began, for `elapsed_s`.

        Raises:
            ValueError: invalid name, description or max_bad_fraction.
            TypeError: a record of the wrong type (`rows.check_types`).
            IngestError: no good record, too many bad records, the iterable raised OSError, or
                `name` holds another kind of versions. Existing versions and LATEST are untouched.
        """
        check_ingest_args(name, max_bad_fraction)
        check_description(description)
        started = time.perf_counter() if started is None else started
        self.check_kind(name, rows.kind)
        bad = self._validate(records, rows, description, progress)

        good = len(rows)
        self._check_counts(name, description, good, bad, max_bad_fraction)

        table, version = rows.sorted_table()

        def write(staging: Path) -> dict:
            files = write_parts(
                table, staging, rows_per_file=self.rows_per_file, row_group_rows=self.row_group_rows
            )
            return rows.manifest(
                name=name, version=version, source=description, quarantined=len(bad),
                files=files,
            )

        return self.publish_version(
            name, version, write, bad, started=started, rows=good, splits=rows.splits, channels=rows.channels
        )

    def ingest_buckets(
        self,
        rows: ImageRows | TextRows,
        name: str,
        *,
        description: str,
        max_bad_fraction: float,
        write: Callable[[Path], Iterable[BucketResult]],
        started: float | None = None,
    ) -> IngestResult:
        """Publish a version whose buckets were written by someone else: the `ray` engine.

        `write(staging)` writes every bucket's Parquet parts into the fresh folder `staging`
        (`cl_core.datasets.buckets.finish_bucket`) and returns their `BucketResult`s; only these
        small summaries are held here, never the rows. Then, as `ingest` does: too many bad
        records or none good fail with the quarantine written; otherwise the version id comes
        from the bucket digests, the folder is renamed into place (or dropped when the version
        exists: `created=False`), and LATEST moves. On any failure the staging folder is
        removed and existing versions and LATEST are untouched.

        Args:
            rows: an empty `ImageRows` (with the source's class names) or `TextRows`.
            name: the dataset name.
            description: the source, for the manifest and quarantine entries.
            max_bad_fraction: fail when bad / (good + bad) exceeds this.
            write: see above.
            started: `time.perf_counter()` when the ingest began, for `elapsed_s`.

        Raises:
            ValueError: invalid name or max_bad_fraction.
            IngestError: as `ingest`; errors `write` raises pass through.
        """
        check_ingest_args(name, max_bad_fraction)
        started = time.perf_counter() if started is None else started
        self.check_kind(name, rows.kind)
        with self._staging(name) as staging:
            digests = [empty_bucket_digest()] * BUCKETS
            ordered_bad, files, good, nodes = [], [], 0, set()
            for result in sorted(write(staging), key=lambda r: r.bucket):
                digests[result.bucket] = result.digest
                files.extend(result.files)
                ordered_bad.extend(result.bad)
                good += result.rows
                nodes |= result.nodes
                if result.rows:
                    rows.stats.merge(result.stats)
            bad = [record for _, record in sorted(ordered_bad, key=lambda item: item[0])]
            self._check_counts(name, description, good, bad, max_bad_fraction)
            version = combine(digests)
            target = self.root / name / version
            created = False
            if not (target / MANIFEST_FILE).is_file():
                manifest = rows.manifest(
                    name=name, version=version, source=description, quarantined=len(bad),
                    files=files,
                )
                created = self._rename_into_place(staging, target, manifest)
        return self._finish(name, version, bad, created, started, rows=good, splits=rows.splits,
                            channels=rows.channels, details={"engine": "ray", "nodes": sorted(nodes)})

    def publish_version(
        self,
        name: str,
        version: str,
        write: Callable[[Path], dict],
        bad: list[BadRecord],
        *,
        started: float,
        rows: int,
        splits: dict[str, int],
        channels: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> IngestResult:
        """Publish version `version` of `name` unless it is stored already (`created=False`), then
        write the quarantine file (when `bad`), move LATEST and return the result.

        `write(folder)` writes the version's files into a fresh temporary folder and returns its
        manifest; the folder is then renamed into place, so readers never see it half written
        (`created=False` too when another ingest published the same version first). `rows`,
        `splits` (count per split; the empty ones are left out), `channels` and `details` are
        reported as given; `started` is `time.perf_counter()` when the ingest began.
        """
        target = self.root / name / version
        created = False
        if not (target / MANIFEST_FILE).is_file():
            with self._staging(name) as staging:
                created = self._rename_into_place(staging, target, write(staging))
        return self._finish(name, version, bad, created, started, rows=rows, splits=splits,
                            channels=channels, details=details)

    def _finish(self, name, version, bad, created, started, *, rows, splits, channels, details) -> IngestResult:
        """Every ingest's last steps: the quarantine file, LATEST, the result."""
        quarantine = self.write_quarantine(name, version, bad)
        self._write_latest(name, version)
        return IngestResult(
            name=name,
            version=version,
            path=self.root / name / version,
            rows=rows,
            splits={s: splits[s] for s in SPLITS if splits[s]},
            quarantined=len(bad),
            quarantine_path=quarantine,
            created=created,
            elapsed_s=time.perf_counter() - started,
            channels=channels,
            details=details,
        )

    def failed_ingest(self, name: str, message: str, bad: list[BadRecord]) -> IngestError:
        """The error that ends a failed ingest of `name`, to raise: the bad records are written
        to a quarantine file labelled "failed" first, and the message ends with its path."""
        quarantine = self.write_quarantine(name, "failed", bad)
        where = f"; see {quarantine}" if quarantine else ""
        return IngestError(f"{message}{where}")

    def _check_counts(
        self, name: str, description: str, good: int, bad: list[BadRecord], max_bad_fraction: float
    ) -> None:
        """Fail, with the quarantine written, when nothing is good or too much is bad."""
        total = good + len(bad)
        if good == 0:
            raise self.failed_ingest(name, f"source {description} is empty: 0 good records, {len(bad)} bad", bad)
        if len(bad) / total > max_bad_fraction:
            raise self.failed_ingest(
                name,
                f"{len(bad)} of {total} records from {description} are bad "
                f"({len(bad) / total:.1%} > max_bad_fraction {max_bad_fraction:.1%}); "
                f"nothing was published",
                bad,
            )

    def check_kind(self, name: str, kind: str) -> None:
        """Refuse to put text versions under an image dataset's name, or the reverse: whoever
        resolves the name would suddenly get the other kind of table."""
        latest = self.latest(name)
        if latest is None:
            return
        try:
            existing = manifest_kind(read_manifest(self.root / name / latest))
        except (OSError, ValueError):
            return  # a LATEST without a readable version: nothing to be consistent with
        if existing != kind:
            raise IngestError(
                f"dataset {name!r} in {self.root} holds {existing} versions; ingest "
                f"{modality(kind).noun} under another name"
            )

    def _validate(self, records, rows, description: str, progress) -> list[BadRecord]:
        """One pass over the records: the checks every kind shares here, the kind's own in
        `rows.add`; the good rows end up in `rows`, the bad ones are returned."""
        bad, seen_ids = [], set()
        seen = 0
        try:
            for record in records:
                seen += 1
                if progress is not None and seen % PROGRESS_EVERY == 0:
                    progress(seen)
                if isinstance(record, BadRecord):
                    bad.append(record)
                    continue
                rows.check_types(record, seen - 1)
                if record.id in seen_ids:
                    bad.append(BadRecord(record.id, description, "duplicate id"))
                    continue
                if record.split is not None and record.split not in SPLITS:
                    bad.append(BadRecord(record.id, description, f"unknown split {record.split!r}"))
                    continue
                problem = rows.add(record, record.split or split_for_id(record.id))
                if problem is not None:
                    bad.append(BadRecord(record.id, description, problem))
                    continue
                seen_ids.add(record.id)
        except OSError as error:
            # Readers report per-record damage as BadRecords; an error escaping them means the
            # source itself became unreadable (folder removed, disk error) partway through.
            raise IngestError(f"source {description} became unreadable: {error}") from error
        if progress is not None:
            progress(seen)
        return bad

    @contextmanager
    def _staging(self, name: str) -> Iterator[Path]:
        """A fresh temporary folder beside the versions of `name`, removed on exit unless it
        was renamed into place: no version is ever written where readers can see it."""
        parent = self.root / name
        parent.mkdir(parents=True, exist_ok=True)
        staging = parent / f".tmp-{uuid.uuid4().hex}"
        try:
            staging.mkdir()
            yield staging
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _rename_into_place(staging: Path, target: Path, manifest: dict) -> bool:
        write_manifest(staging, manifest)  # last: a folder with a manifest is complete
        try:
            os.rename(staging, target)
        except OSError:
            if (target / MANIFEST_FILE).is_file():
                return False  # the same content, published concurrently: keep theirs
            raise
        fsync_dir(target.parent)
        return True

    def write_quarantine(self, name: str, label: str, bad: list[BadRecord]) -> Path | None:
        if not bad:
            return None
        folder = self.root / name / QUARANTINE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = folder / f"{stamp}-{label}.jsonl"
        with open(path, "x", encoding="utf-8") as handle:
            for record in bad:
                handle.write(json.dumps(record.to_json_dict()) + "\n")
        return path

    def _write_latest(self, name: str, version: str) -> None:
        """Replace LATEST atomically, so a reader sees the old or the new id, never a mix."""
        replace_atomically(self.root / name / LATEST_FILE, version + "\n")
