"""Ingest user-item interactions and their side tables into a `DatasetStore`: read them as an
`InteractionsSourceSpec` says (`open_interactions_source`), split them by time once all are read
(`rows.InteractionRows`), and publish the three tables as one version through the store's generic
pieces (`check_kind`, `failed_ingest`, `publish_version`). `DatasetStore.ingest_interactions`
calls this.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cl_core.datasets.ingest_result import PROGRESS_EVERY, IngestResult, check_ingest_args
from cl_core.datasets.sources.interactions import InteractionsSourceSpec, open_interactions_source
from cl_core.datasets.sources.interactions.rows import InteractionRows, read_source, write_version


def ingest_interactions(
    store,
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
        store: the `DatasetStore` to publish into.
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
    check_ingest_args(name, max_bad_fraction)
    if not isinstance(spec, InteractionsSourceSpec):
        raise TypeError(f"spec must be an InteractionsSourceSpec, got {type(spec).__name__}")
    started = time.perf_counter()
    opened = open_interactions_source(source, spec, limit=limit)
    store.check_kind(name, InteractionRows.kind)
    rows = InteractionRows(opened.spec, limited=limit is not None)
    read_source(opened, rows, progress, PROGRESS_EVERY)
    bad = [rejected.bad_record() for rejected in rows.rejected]
    too_many = "no good interaction" if len(rows) == 0 else rows.too_many_bad(max_bad_fraction)
    if too_many:
        raise store.failed_ingest(name, f"source {opened.description}: {too_many}; nothing was published", bad)

    interactions, entities, version = rows.tables()

    def write(staging: Path) -> dict:
        return write_version(
            staging, rows, interactions, entities, name=name, version=version, source=opened.description,
            rows_per_file=store.rows_per_file, row_group_rows=store.row_group_rows,
        )

    return store.publish_version(
        name, version, write, bad, started=started, rows=len(rows), splits=rows.split_counts(interactions),
        details=rows.summary(entities),
    )


def ingest_source(store, source: str | Path, name: str, spec: InteractionsSourceSpec, *, max_member_bytes: int,
                  val_fraction: float, **options) -> IngestResult:
    """The interactions record's "ingest" part (`cl_core.modalities`): `ingest_interactions`. An
    interactions source is never a tar shard, so `max_member_bytes` does not apply, and its split
    (`spec.split`: leave-two-out or time cutoffs) always makes a val split, so `val_fraction` does not either."""
    return ingest_interactions(store, source, name, spec, **options)
