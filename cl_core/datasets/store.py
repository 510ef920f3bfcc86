"""The versioned dataset store: ingest a source into an immutable, content-addressed version.

    root/<name>/<version>/part-00000.parquet ... manifest.json    one published version
    root/<name>/LATEST                                             the latest version id
    root/<name>/quarantine/<timestamp>-<version|failed>.jsonl      records that did not ingest

A dataset holds images (`ingest`, `ingest_records`), text pairs (`ingest_text`,
`ingest_text_records`) or user-item interactions (`ingest_interactions`). Images and text run the
same pipeline, only the per-row checks and the table differ (`ImageRows`, `TextRows`);
interactions are split by time once all are read, and a version holds their users and items
tables beside them (`cl_core.datasets.sources.interactions.rows`). The version id of images and
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cl_core.datasets.dataset_version import DatasetVersion
from cl_core.datasets.errors import IngestError
from cl_core.datasets.image_rows import ImageRows
from cl_core.datasets.layout import (
    LATEST_FILE,
    MANIFEST_FILE,
    check_name,
    dataset_names,
    dataset_versions,
    latest_version,
    version_folder,
)
from cl_core.datasets.manifest import manifest_kind, read_manifest, write_manifest
from cl_core.datasets.parquet_parts import write_parts
from cl_core.datasets.records import SPLITS, BadRecord, ImageRecord
from cl_core.datasets.sources import open_source
from cl_core.datasets.sources.interactions import InteractionsSourceSpec, open_interactions_source
from cl_core.datasets.sources.interactions.rows import InteractionRows, read_source, write_version
from cl_core.datasets.sources.text import TextPairRecord, TextSourceSpec, open_text_source
from cl_core.datasets.sources.text.rows import TextRows
from cl_core.datasets.sources.webdataset import MAX_MEMBER_BYTES
from cl_core.datasets.splits import split_for_id
from cl_core.datasets.version_id import BUCKETS, combine, empty_bucket_digest
from cl_core.durable_files import fsync_dir, replace_atomically

if TYPE_CHECKING:
    from cl_core.datasets.buckets import BucketResult

QUARANTINE_DIR = "quarantine"
PROGRESS_EVERY = 5000


def _check_description(description: object) -> None:
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"description must be a non-empty string, got {description!r}")


def _check_ingest_args(name: str, max_bad_fraction: float) -> None:
    check_name(name)
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise ValueError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction!r}")


@dataclass(frozen=True)
class IngestResult:
    name: str
    version: str
    path: Path
    rows: int
    splits: dict[str, int]
    quarantined: int
    quarantine_path: Path | None
    created: bool  # False when this exact content was already stored
    elapsed_s: float
    channels: int | None  # 1 (all gray) or 3 for images; None for text and interactions
    # Counts of a kind's own: interactions give users, items, side rows, rejected rows by cause.
    details: dict[str, Any] | None = None


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

    # ---- ingest --------------------------------------------------------------------------

    def ingest(
        self,
        source: str,
        name: str,
        *,
        limit: int | None = None,
        max_bad_fraction: float = 0.05,
        progress: Callable[[int], None] | None = None,
        max_member_bytes: int = MAX_MEMBER_BYTES,
    ) -> IngestResult:
        """Validate every record of `source` and publish the good ones as a version of `name`.

        Each image is fully decoded; undecodable images, source damage and duplicate ids go to
        the quarantine file. Rows without a split get `split_for_id(id)`. This is
        `ingest_records` over the records of `open_source(source, limit=limit)`.

        Args:
            source: see `open_source`: "digits", a folder of tar shards, an image folder.
            name: the dataset name, `^[A-Za-z0-9][A-Za-z0-9._-]*$`.
            limit: ingest only the first `limit` good records.
            max_bad_fraction: fail when bad / (good + bad) exceeds this.
            progress: called with the number of records seen, every few thousand records.
            max_member_bytes: tar shards: a member above this is quarantined unread, with its
                name and size (`data.max_member_bytes`).

        Raises:
            ValueError: invalid name, limit or max_bad_fraction.
            IngestError: unreadable or empty source, too many bad records, or `name` holds text
                versions. Existing versions and LATEST are untouched; the quarantine file is
                written when there were bad records, and the message gives its path.
        """
        _check_ingest_args(name, max_bad_fraction)
        started = time.perf_counter()
        opened = open_source(source, limit=limit, max_member_bytes=max_member_bytes)
        return self._ingest(
            opened.records, ImageRows(opened.class_names), name, opened.description,
            max_bad_fraction, progress, started,
        )

    def ingest_records(
        self,
        records: Iterable[ImageRecord | BadRecord],
        name: str,
        *,
        description: str,
        class_names: Sequence[str] | None = None,
        max_bad_fraction: float = 0.05,
        progress: Callable[[int], None] | None = None,
    ) -> IngestResult:
        """Publish records made in code (generated, converted, read by a custom reader) as a
        version of `name`, with exactly the validation, quarantine, versioning and atomic
        publish of `ingest`.

        The records are read once, in one pass. `BadRecord`s go straight to the quarantine and
        count as bad; every `ImageRecord` is fully decoded, and undecodable images, duplicate
        ids, unknown splits and labels that are negative or (with `class_names`) have no class
        name are quarantined too. Rows with `split=None` get `split_for_id(id)`. The same good
        rows give the same version id whatever their order, and re-ingesting them writes
        nothing (`created=False`). All good rows are held in memory until the version is
        written, as with `ingest`.

        Args:
            records: `ImageRecord`s and `BadRecord`s; any iterable, e.g. a generator.
            name: the dataset name, `^[A-Za-z0-9][A-Za-z0-9._-]*$`.
            description: where the records came from; stored as the manifest's `source` and
                used in messages and quarantine entries (e.g. "generated:digits-x100").
            class_names: label i is class_names[i]; None when labels are unnamed.
            max_bad_fraction: fail when bad / (good + bad) exceeds this.
            progress: called with the number of records seen, every few thousand records.

        Raises:
            ValueError: invalid name, description or max_bad_fraction.
            TypeError: an element of `records` is neither an `ImageRecord` nor a `BadRecord`,
                or an `ImageRecord` field has the wrong type (id str, image bytes, label int or
                None, split str or None). Nothing is published.
            IngestError: no good record, too many bad records, the iterable raised OSError, or
                `name` holds text versions. Existing versions and LATEST are untouched; the
                quarantine file is written when there were bad records, and the message gives
                its path.
        """
        _check_ingest_args(name, max_bad_fraction)
        _check_description(description)
        if class_names is not None:
            if isinstance(class_names, str):
                raise ValueError(f"class_names must be a sequence of strings, got {class_names!r}")
            class_names = list(class_names)
            if not all(isinstance(c, str) for c in class_names):
                raise ValueError(f"class_names must be a sequence of strings, got {class_names!r}")
        return self._ingest(
            records, ImageRows(class_names), name, description, max_bad_fraction, progress,
            time.perf_counter(),
        )

    def ingest_text(
        self,
        source: str | Path,
        name: str,
        spec: TextSourceSpec,
        *,
        limit: int | None = None,
        max_bad_fraction: float = 0.05,
        progress: Callable[[int], None] | None = None,
    ) -> IngestResult:
        """Read sentence pairs from `source` as `spec` says and publish the good ones as a
        version of `name`: `ingest_text_records` over `open_text_source(source, spec, limit)`.

        Malformed rows (too few columns, an empty sentence, an unparsable score, bad JSON) go
        to the quarantine file with their file and line; so do rows the store rejects (see
        `ingest_text_records`). Versioning, LATEST and max_bad_fraction work as for `ingest`.

        Args:
            source: a .tsv/.csv/.jsonl/.parquet file (the text ones may be gzipped: .tsv.gz),
                or a folder of them (see `open_text_source`).
            name: the dataset name, `^[A-Za-z0-9][A-Za-z0-9._-]*$`.
            spec: the format and which columns hold the sentences, score, label, ...
            limit: ingest only the first `limit` good records.
            max_bad_fraction: fail when bad / (good + bad) exceeds this.
            progress: called with the number of records seen, every few thousand records.

        Raises:
            ValueError: invalid name, limit or max_bad_fraction.
            TypeError: `spec` is not a `TextSourceSpec`.
            IngestError: missing, unreadable or empty source, a spec the files cannot be read
                with (unknown header name or Parquet column), too many bad records, or `name`
                holds image versions. Existing versions and LATEST are untouched.
        """
        _check_ingest_args(name, max_bad_fraction)
        if not isinstance(spec, TextSourceSpec):
            raise TypeError(f"spec must be a TextSourceSpec, got {type(spec).__name__}")
        started = time.perf_counter()
        opened = open_text_source(source, spec, limit=limit)
        return self._ingest(
            opened.records, TextRows(), name, opened.description, max_bad_fraction, progress,
            started,
        )

    def ingest_text_records(
        self,
        records: Iterable[TextPairRecord | BadRecord],
        name: str,
        *,
        description: str,
        max_bad_fraction: float = 0.05,
        progress: Callable[[int], None] | None = None,
    ) -> IngestResult:
        """Publish text records made in code as a version of `name`, with exactly the
        validation, quarantine, versioning and atomic publish of `ingest_text`.

        The records are read once. `BadRecord`s go straight to the quarantine; so do records
        with a duplicate id, an empty or whitespace-only text1, text2 or hard negative (text2
        None is a single-sentence row and fine), an unknown split, a negative label, or a NaN
        or infinite score. Rows with `split=None` get `split_for_id(id)`. The version id hashes
        (id, text1, text2, score, label, negatives, split) in id order: the same rows give the
        same version, and re-ingesting them writes nothing (`created=False`).

        Args:
            records: `TextPairRecord`s and `BadRecord`s; any iterable, e.g. a generator.
            name: the dataset name, `^[A-Za-z0-9][A-Za-z0-9._-]*$`.
            description: where the records came from; stored as the manifest's `source`.
            max_bad_fraction: fail when bad / (good + bad) exceeds this.
            progress: called with the number of records seen, every few thousand records.

        Raises:
            ValueError: invalid name, description or max_bad_fraction.
            TypeError: an element is neither a `TextPairRecord` nor a `BadRecord`, or a field
                has the wrong type. Nothing is published.
            IngestError: no good record, too many bad records, the iterable raised OSError, or
                `name` holds image versions. Existing versions and LATEST are untouched.
        """
        _check_ingest_args(name, max_bad_fraction)
        _check_description(description)
        return self._ingest(
            records, TextRows(), name, description, max_bad_fraction, progress,
            time.perf_counter(),
        )

    def ingest_interactions(
        self,
        source: str | Path,
        name: str,
        spec: InteractionsSourceSpec,
        *,
        limit: int | None = None,
        max_bad_fraction: float = 0.05,
        progress: Callable[[int], None] | None = None,
    ) -> IngestResult:
        """Read user-item interactions and their side tables from `source` as `spec` says, split
        them by time, and publish the good rows as a version of `name` (kind "interactions").

        Quarantined with file, line and reason: rows with a missing or non-numeric field
        (user, item, timestamp, rating), duplicate (user, item, timestamp) rows (the first is
        kept), side-table rows with a bad feature, a duplicate id or an id no interaction has
        (with `limit`, those are passed over instead: the slice dropped their interactions).
        `max_bad_fraction` bounds each table (interactions, users, items) on its own. The version
        id hashes every stored row (`InteractionRows.tables`): the same rows in any file order
        give the same version, and re-ingesting them writes nothing (`created=False`).
        `IngestResult.details` holds the counts of users, items, side rows and rejected rows by
        table and cause.

        Args:
            source: a .csv/.tsv/.parquet/.inter file or a folder of them, or "ml-100k" (see
                `open_interactions_source`).
            name: the dataset name, `^[A-Za-z0-9][A-Za-z0-9._-]*$`.
            spec: the columns, side tables and split (`data.interactions`).
            limit: ingest only the first `limit` good interactions.
            max_bad_fraction: fail when a table's bad / (good + bad) exceeds this.
            progress: called with the number of interaction rows seen, every few thousand.

        Raises:
            ValueError: invalid name, limit or max_bad_fraction.
            TypeError: `spec` is not an `InteractionsSourceSpec`.
            IngestError: missing, unreadable or empty source, a spec the files cannot be read
                with, too many bad rows, or `name` holds another kind of versions. Existing
                versions and LATEST are untouched; the quarantine file is written when there
                were bad rows, and the message gives its path.
        """
        _check_ingest_args(name, max_bad_fraction)
        if not isinstance(spec, InteractionsSourceSpec):
            raise TypeError(f"spec must be an InteractionsSourceSpec, got {type(spec).__name__}")
        started = time.perf_counter()
        opened = open_interactions_source(source, spec, limit=limit)
        self._check_kind(name, InteractionRows.kind)
        rows = InteractionRows(opened.spec, limited=limit is not None)
        read_source(opened, rows, progress, PROGRESS_EVERY)
        bad = [rejected.bad_record() for rejected in rows.rejected]
        too_many = "no good interaction" if len(rows) == 0 else rows.too_many_bad(max_bad_fraction)
        if too_many:
            quarantine = self._write_quarantine(name, "failed", bad)
            where = f"; see {quarantine}" if quarantine else ""
            raise IngestError(f"source {opened.description}: {too_many}; nothing was published{where}")

        interactions, entities, version = rows.tables()
        target = self.root / name / version
        created = False
        if not (target / MANIFEST_FILE).is_file():
            created = self._publish_folder(target, lambda staging: write_version(
                staging, rows, interactions, entities, name=name, version=version, source=opened.description,
                rows_per_file=self.rows_per_file, row_group_rows=self.row_group_rows,
            ))
        quarantine = self._write_quarantine(name, version, bad)
        self._write_latest(name, version)
        splits = rows.split_counts(interactions)
        return IngestResult(
            name=name,
            version=version,
            path=target,
            rows=len(rows),
            splits={s: splits[s] for s in SPLITS if splits[s]},
            quarantined=len(bad),
            quarantine_path=quarantine,
            created=created,
            elapsed_s=time.perf_counter() - started,
            channels=None,
            details=rows.summary(entities),
        )

    def _ingest(
        self, records, rows, name, description, max_bad_fraction, progress, started
    ) -> IngestResult:
        """The one ingest every public entry point runs; arguments are already checked.

        `rows` is an empty `ImageRows` or `TextRows`: the kind-specific checks and table.
        """
        self._check_kind(name, rows.kind)
        bad = self._validate(records, rows, description, progress)

        good = len(rows)
        self._check_counts(name, description, good, bad, max_bad_fraction)

        table, version = rows.sorted_table()
        target = self.root / name / version
        created = False
        if not (target / MANIFEST_FILE).is_file():
            created = self._publish(table, target, rows, name, version, description, len(bad))
        return self._finish(name, version, target, rows, good, bad, created, started)

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
        _check_ingest_args(name, max_bad_fraction)
        started = time.perf_counter() if started is None else started
        self._check_kind(name, rows.kind)
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
        return self._finish(name, version, target, rows, good, bad, created, started,
                            details={"engine": "ray", "nodes": sorted(nodes)})

    def _finish(self, name, version, target, rows, good, bad, created, started, details=None) -> IngestResult:
        """Both engines' last steps for images and text: the quarantine file, LATEST, the result."""
        quarantine = self._write_quarantine(name, version, bad)
        self._write_latest(name, version)
        return IngestResult(
            name=name,
            version=version,
            path=target,
            rows=good,
            splits={s: rows.splits[s] for s in SPLITS if rows.splits[s]},
            quarantined=len(bad),
            quarantine_path=quarantine,
            created=created,
            elapsed_s=time.perf_counter() - started,
            channels=rows.channels if rows.kind == "image" else None,
            details=details,
        )

    def _check_counts(
        self, name: str, description: str, good: int, bad: list[BadRecord], max_bad_fraction: float
    ) -> None:
        """Fail, with the quarantine written, when nothing is good or too much is bad."""
        total = good + len(bad)
        if good == 0:
            quarantine = self._write_quarantine(name, "failed", bad)
            where = f"; see {quarantine}" if quarantine else ""
            raise IngestError(
                f"source {description} is empty: 0 good records, {len(bad)} bad{where}"
            )
        if len(bad) / total > max_bad_fraction:
            quarantine = self._write_quarantine(name, "failed", bad)
            raise IngestError(
                f"{len(bad)} of {total} records from {description} are bad "
                f"({len(bad) / total:.1%} > max_bad_fraction {max_bad_fraction:.1%}); "
                f"nothing was published; see {quarantine}"
            )

    def _check_kind(self, name: str, kind: str) -> None:
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
                f"{'images' if kind == 'image' else kind} under another name"
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

    def _publish(
        self, table, target: Path, rows, name, version, description, quarantined
    ) -> bool:
        """Publish an image or text version: its table as Parquet parts, and its manifest."""

        def write(staging: Path) -> dict:
            files = write_parts(
                table, staging, rows_per_file=self.rows_per_file, row_group_rows=self.row_group_rows
            )
            return rows.manifest(
                name=name, version=version, source=description, quarantined=quarantined,
                files=files,
            )

        return self._publish_folder(target, write)

    def _publish_folder(self, target: Path, write: Callable[[Path], dict]) -> bool:
        """Have `write(folder)` write the version's files into a temporary folder and return its
        manifest, then rename the folder into place.

        Returns False when another ingest published the same version first.
        """
        with self._staging(target.parent.name) as staging:
            return self._rename_into_place(staging, target, write(staging))

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

    def _write_quarantine(self, name: str, label: str, bad: list[BadRecord]) -> Path | None:
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
