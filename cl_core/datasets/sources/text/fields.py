"""Turn one row of a text file into a `TextPairRecord`, or a `BadRecord` that says where and why.

A row is whatever the format reader produced: a list of cell strings (TSV, CSV) or a dict of
typed values (JSONL, Parquet). `FilePlan` says, for one file, which cell holds each field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cl_core.datasets.records import BadRecord
from cl_core.datasets.sources.text.records import TextPairRecord
from cl_core.datasets.splits import canonical_split, describe_split_names


class BadField(Exception):
    """What is wrong with one field; the message continues "<file> line 17: column 6 (text2) "."""


@dataclass(frozen=True)
class Column:
    role: str  # "text1", "text2", "score", "label", "negative 1", ..., "id", "split"
    key: int | str  # a 0-based position (TSV/CSV) or a name (JSONL/Parquet), resolved for the file
    described: str  # how reasons name it: 'column 6 (text2)', 'field "s2" (text2)'


@dataclass(frozen=True)
class FilePlan:
    """How to read one file: its format, the resolved columns, and the split its name gives."""

    path: Path
    format: str  # "tsv", "csv", "jsonl" or "parquet"
    columns: tuple[Column, ...]  # the id column first, so that other errors can name the id
    split: str | None  # from the file name; None when there is a split column or no split word
    header: bool  # TSV/CSV: line 1 is a header, not data
    id_prefix: str  # default ids are "<id_prefix>:<number>": the stem, or the name if shared

    @property
    def unit(self) -> str:
        return "row" if self.format == "parquet" else "line"

    def default_id(self, number: int) -> str:
        # Zero-padded so that ids sort in file order; the prefix keeps them apart across files.
        return f"{self.id_prefix}:{number:06d}"

    def bad(self, number: int, why: str, record_id: str | None = None) -> BadRecord:
        return BadRecord(
            record_id or self.default_id(number),
            str(self.path),
            f"{self.path.name} {self.unit} {number}: {why}",
        )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value: object) -> str:
    # Kept exactly as read: surrounding spaces are part of the sentence as the source gave it.
    if not isinstance(value, str):
        raise BadField(f"is not a string: {_show(value)}")
    if not value.strip():
        raise BadField("is empty")
    return value


def _number(value: object) -> float:
    if isinstance(value, str):
        if not value.strip():
            raise BadField("is empty")
        try:
            return float(value)
        except ValueError:
            raise BadField(f"is not a number: {_show(value)}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadField(f"is not a number: {_show(value)}")
    try:
        return float(value)
    except OverflowError:
        raise BadField(f"is too large for a float: {_show(value)}") from None


def _integer(value: object) -> int:
    if isinstance(value, str):
        if not value.strip():
            raise BadField("is empty")
        try:
            return int(value)
        except ValueError:
            pass
        try:
            value = float(value)  # "1.0" is a whole number written as a float
        except ValueError:
            raise BadField(f"is not an integer: {_show(value)}") from None
    if isinstance(value, float) and value.is_integer():
        return int(value)  # e.g. a pandas label column that became float through a NaN
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise BadField(f"is not an integer: {_show(value)}")


def _record_id(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value)


def _split(value: object) -> str:
    split = canonical_split(value) if isinstance(value, str) else None
    if split is None:
        raise BadField(f"is not a split ({describe_split_names()}): {_show(value)}")
    return split


def _negatives(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (_text(value),)
    if not isinstance(value, (list, tuple)):
        raise BadField(f"is not a sentence or a list of sentences: {_show(value)}")
    for position, item in enumerate(value, 1):
        try:
            _text(item)
        except BadField as error:
            raise BadField(f"item {position} {error}") from None
    return tuple(value)


_CONVERT: dict[str, Callable[[object], Any]] = {
    "id": _record_id,
    "text1": _text,
    "text2": _text,
    "score": _number,
    "label": _integer,
    "split": _split,
}


def build_record(
    plan: FilePlan, number: int, row: Any, get: Callable[[Any, int | str], object]
) -> TextPairRecord | BadRecord:
    """The record in `row`, line (or Parquet row) `number` of `plan.path`.

    `get(row, key)` returns the cell or raises `BadField` ("is missing ...", "is null").
    Only the first bad field of a row is reported.
    """
    values: dict[str, Any] = {}
    negatives: list[str] = []
    for column in plan.columns:
        try:
            value = get(row, column.key)
            if column.role.startswith("negative"):
                negatives.extend(_negatives(value))
            else:
                values[column.role] = _CONVERT[column.role](value)
        except BadField as error:
            return plan.bad(number, f"{column.described} {error}", values.get("id"))
    return TextPairRecord(
        id=values.get("id", plan.default_id(number)),
        text1=values["text1"],
        text2=values.get("text2"),
        score=values.get("score"),
        label=values.get("label"),
        negatives=tuple(negatives),
        split=values.get("split", plan.split),
    )


def cell(row: list[str], key: int) -> str:
    """`get` for TSV/CSV rows: the cell at 0-based position `key`."""
    if key >= len(row):
        raise BadField(f"is missing (the line has {len(row)} column{'' if len(row) == 1 else 's'})")
    return row[key]


def field(row: dict[str, Any], key: str) -> object:
    """`get` for JSONL objects and Parquet rows: the value named `key`, never None."""
    if key not in row:
        raise BadField("is missing")
    if row[key] is None:
        raise BadField("is null")
    return row[key]
