"""A validation split for a source that names none: `val_fraction` of its train rows, chosen by a
hash of the row id (`cl_core.datasets.splits.carved_split`).

A source decides before reading a row, from the splits its parts name (shard names, split
folders, text file names: `carves_val`), and then passes each record through `with_carved_val`.
Both ingest engines read the same wrapped records (the `ray` engine calls the wrapped units, one
per task), so they publish the same version, and a re-ingest of the same rows chooses the same
val rows. Images and text share it: any record with `id` and `split` fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from functools import partial
from typing import Any

from cl_core.datasets.records import BadRecord
from cl_core.datasets.splits import carved_split, carves_val, check_val_fraction

Unit = Callable[[], Iterator[Any]]


def with_carved_val(records: Iterable[Any], val_fraction: float) -> Iterator[Any]:
    """`records`, each train record that `carved_split` chooses moved to "val"; bad records and
    the other splits pass as they are. Closing it closes `records` (a reader's open shard or
    file), as `first_good` expects of the iterator it stops."""
    try:
        for record in records:
            if not isinstance(record, BadRecord):
                split = carved_split(record.id, record.split, val_fraction)
                if split != record.split:
                    record = replace(record, split=split)
            yield record
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()


def _carved_unit(unit: Unit, val_fraction: float) -> Iterator[Any]:
    return with_carved_val(unit(), val_fraction)


def carve_val(records: Iterator[Any], units: list[Unit], named_splits: Iterable[str | None],
              val_fraction: float) -> tuple[Iterator[Any], list[Unit], bool]:
    """(records, units, carved): the source's records and its units (picklable, for the `ray`
    engine) with val carved when `carves_val(named_splits)` and `val_fraction` > 0, else as
    they were; `carved` says which.

    Raises:
        ValueError: `val_fraction` outside [0, 1).
    """
    val_fraction = check_val_fraction(val_fraction)
    if val_fraction == 0 or not carves_val(named_splits):
        return records, units, False
    return (with_carved_val(records, val_fraction), [partial(_carved_unit, unit, val_fraction) for unit in units],
            True)
