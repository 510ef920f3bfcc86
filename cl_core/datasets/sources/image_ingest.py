"""Ingest images into a `DatasetStore`: from a source string (`open_source`: "digits", a folder
of tar shards, an image folder) or from records made in code. The image checks and table are
`ImageRows`; validation, quarantine, versioning and the atomic publish are the store's
(`DatasetStore.ingest_rows`). `DatasetStore.ingest` and `DatasetStore.ingest_records` call these.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from cl_core.datasets.image_rows import ImageRows
from cl_core.datasets.ingest_result import IngestResult, check_description, check_ingest_args
from cl_core.datasets.records import BadRecord, ImageRecord
from cl_core.datasets.sources import open_source
from cl_core.datasets.sources.webdataset import MAX_MEMBER_BYTES
from cl_core.defaults import VAL_FRACTION


def ingest_images(
    store,
    source: str,
    name: str,
    *,
    limit: int | None = None,
    max_bad_fraction: float = 0.05,
    progress: Callable[[int], None] | None = None,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    val_fraction: float = VAL_FRACTION,
) -> IngestResult:
    """Validate every record of `source` and publish the good ones as a version of `name`.

    Each image is fully decoded; undecodable images, source damage and duplicate ids go to
    the quarantine file. Rows without a split get `split_for_id(id)`; a source whose shards or
    split folders name train but no val gets `val_fraction` of its train rows as val. This is
    `ingest_records` over the records of `open_source(source, limit=limit, ...)`.

    Args:
        store: the `DatasetStore` to publish into.
        source: see `open_source`: "digits", a folder of tar shards, an image folder.
        name: the dataset name, `^[A-Za-z0-9][A-Za-z0-9._-]*$`.
        limit: ingest only the first `limit` good records.
        max_bad_fraction: fail when bad / (good + bad) exceeds this.
        progress: called with the number of records seen, every few thousand records.
        max_member_bytes: tar shards: a member above this is quarantined unread, with its
            name and size (`data.max_member_bytes`).
        val_fraction: the share of train rows carved into val when the source names no val
            split, chosen by a hash of the id (`data.val_fraction`; 0: none).

    Raises:
        ValueError: invalid name, limit, max_bad_fraction or val_fraction.
        IngestError: unreadable or empty source, too many bad records, or `name` holds text
            versions. Existing versions and LATEST are untouched; the quarantine file is
            written when there were bad records, and the message gives its path.
    """
    check_ingest_args(name, max_bad_fraction)
    started = time.perf_counter()
    opened = open_source(source, limit=limit, max_member_bytes=max_member_bytes, val_fraction=val_fraction)
    return store.ingest_rows(
        opened.records, ImageRows(opened.class_names), name, description=opened.description,
        max_bad_fraction=max_bad_fraction, progress=progress, started=started,
    )


def ingest_image_records(
    store,
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
        store: the `DatasetStore` to publish into.
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
    check_ingest_args(name, max_bad_fraction)
    check_description(description)
    if class_names is not None:
        if isinstance(class_names, str):
            raise ValueError(f"class_names must be a sequence of strings, got {class_names!r}")
        class_names = list(class_names)
        if not all(isinstance(c, str) for c in class_names):
            raise ValueError(f"class_names must be a sequence of strings, got {class_names!r}")
    return store.ingest_rows(
        records, ImageRows(class_names), name, description=description,
        max_bad_fraction=max_bad_fraction, progress=progress,
    )


def ingest_source(store, source: str, name: str, spec: None, *, max_member_bytes: int,
                  val_fraction: float = VAL_FRACTION, **options) -> IngestResult:
    """The image record's "ingest" part (`cl_core.modalities`): `ingest_images`; an image source
    has no config section, so `spec` is None."""
    return ingest_images(store, source, name, max_member_bytes=max_member_bytes, val_fraction=val_fraction, **options)
