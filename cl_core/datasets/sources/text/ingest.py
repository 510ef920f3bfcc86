"""Ingest sentence pairs into a `DatasetStore`: from files read as a `TextSourceSpec` says
(`open_text_source`) or from records made in code. The text checks and table are `TextRows`;
validation, quarantine, versioning and the atomic publish are the store's
(`DatasetStore.ingest_rows`). `DatasetStore.ingest_text` and `ingest_text_records` call these.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from cl_core.datasets.ingest_result import IngestResult, check_description, check_ingest_args
from cl_core.datasets.records import BadRecord
from cl_core.datasets.sources.text import TextPairRecord, TextSourceSpec, open_text_source
from cl_core.datasets.sources.text.rows import TextRows
from cl_core.defaults import VAL_FRACTION


def ingest_text(
    store,
    source: str | Path,
    name: str,
    spec: TextSourceSpec,
    *,
    limit: int | None = None,
    max_bad_fraction: float = 0.05,
    progress: Callable[[int], None] | None = None,
    val_fraction: float = VAL_FRACTION,
) -> IngestResult:
    """Read sentence pairs from `source` as `spec` says and publish the good ones as a
    version of `name`: `ingest_text_records` over `open_text_source(source, spec, limit,
    val_fraction)`.

    Malformed rows (too few columns, an empty sentence, an unparsable score, bad JSON) go
    to the quarantine file with their file and line; so do rows the store rejects (see
    `ingest_text_records`). Versioning, LATEST and max_bad_fraction work as for `ingest`.

    Args:
        store: the `DatasetStore` to publish into.
        source: a .tsv/.csv/.jsonl/.parquet file (the text ones may be gzipped: .tsv.gz),
            or a folder of them (see `open_text_source`).
        name: the dataset name, `^[A-Za-z0-9][A-Za-z0-9._-]*$`.
        spec: the format and which columns hold the sentences, score, label, ...
        limit: ingest only the first `limit` good records.
        max_bad_fraction: fail when bad / (good + bad) exceeds this.
        progress: called with the number of records seen, every few thousand records.
        val_fraction: files that name train and test but no dev/val split: this share of the
            train rows becomes val, chosen by a hash of the id (`data.val_fraction`; 0: none).

    Raises:
        ValueError: invalid name, limit, max_bad_fraction or val_fraction.
        TypeError: `spec` is not a `TextSourceSpec`.
        IngestError: missing, unreadable or empty source, a spec the files cannot be read
            with (unknown header name or Parquet column), too many bad records, or `name`
            holds image versions. Existing versions and LATEST are untouched.
    """
    check_ingest_args(name, max_bad_fraction)
    if not isinstance(spec, TextSourceSpec):
        raise TypeError(f"spec must be a TextSourceSpec, got {type(spec).__name__}")
    started = time.perf_counter()
    opened = open_text_source(source, spec, limit=limit, val_fraction=val_fraction)
    return store.ingest_rows(
        opened.records, TextRows(), name, description=opened.description,
        max_bad_fraction=max_bad_fraction, progress=progress, started=started,
    )


def ingest_text_records(
    store,
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
        store: the `DatasetStore` to publish into.
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
    check_ingest_args(name, max_bad_fraction)
    check_description(description)
    return store.ingest_rows(
        records, TextRows(), name, description=description,
        max_bad_fraction=max_bad_fraction, progress=progress,
    )


def ingest_source(store, source: str | Path, name: str, spec: TextSourceSpec, *, max_member_bytes: int,
                  val_fraction: float = VAL_FRACTION, **options) -> IngestResult:
    """The text record's "ingest" part (`cl_core.modalities`): `ingest_text`. A text source is
    never a tar shard, so `max_member_bytes` does not apply."""
    return ingest_text(store, source, name, spec, val_fraction=val_fraction, **options)
