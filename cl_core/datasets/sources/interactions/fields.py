"""Turn one row of an interactions file or side table into a record, or a `Rejected` saying where
and why.

A row is what the format's row reader gave (`cl_core.datasets.sources.text.readers`): a list of
cell strings (TSV, CSV, atomic) or a dict of typed values (Parquet).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from cl_core.datasets.sources.interactions.plan import FilePlan
from cl_core.datasets.sources.interactions.records import EntityRecord, InteractionRecord, Rejected, Where
from cl_core.datasets.sources.text.fields import BadField, cell
from cl_core.datasets.sources.text.readers import csv_rows, parquet_rows, tsv_rows


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_id(value: object) -> str:
    """A user or item id as the string it is stored under: text stripped of surrounding spaces,
    an integer (or a whole float, as pandas writes ids of a column with a gap) in decimal."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise BadField("is empty")
        return text
    if isinstance(value, bool):
        raise BadField(f"is not an id: {_show(value)}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise BadField(f"is not an id: {_show(value)}")


def parse_number(value: object) -> float:
    """A finite number: a numeric cell, an int or float, or (Parquet) a datetime as Unix seconds
    (a datetime without a time zone is taken as UTC)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, str):
        if not value.strip():
            raise BadField("is empty")
        try:
            number = float(value)
        except ValueError:
            raise BadField(f"is not a number: {_show(value)}") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadField(f"is not a number: {_show(value)}")
    else:
        try:
            number = float(value)
        except OverflowError:
            raise BadField(f"is too large for a float: {_show(value)}") from None
    if not math.isfinite(number):
        raise BadField(f"is not a finite number: {_show(value)}")
    return number


class FeatureParser:
    """Side-table cells -> stored values; `missing_values` (stripped) mean "unknown"."""

    def __init__(self, separator: str, missing_values: tuple[str, ...]) -> None:
        self.separator = separator
        self.missing = set(missing_values)

    def _text(self, value: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            text = value.strip()
            return None if text in self.missing else text
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadField(f"is not a value: {_show(value)}")
        if isinstance(value, float) and not value.is_integer():
            return None if math.isnan(value) else str(value)  # NaN: how pandas writes a missing value
        return parse_id(value)  # 3 and 3.0 (a Parquet int column with a gap) are the category "3"

    def categorical(self, value: object) -> str | None:
        return self._text(value)

    def title(self, value: object) -> str | None:
        return self._text(value)

    def multi_valued(self, value: object) -> tuple[str, ...]:
        """The distinct values, in the order given; none for a missing cell."""
        if isinstance(value, (list, tuple)):
            parts = [self._text(v) for v in value]
        else:
            text = self._text(value)
            parts = [] if text is None else [self._text(p) for p in text.split(self.separator)]
        return tuple(dict.fromkeys(p for p in parts if p is not None))

    def numeric(self, value: object) -> float | None:
        if value is None or (isinstance(value, str) and value.strip() in self.missing):
            return None
        if isinstance(value, float) and math.isnan(value):
            return None  # a Parquet NaN: how pandas writes a missing number
        return parse_number(value)


def _get_value(plan: FilePlan) -> Callable[[Any, int | str], object]:
    if plan.format == "parquet":
        return lambda row, key: row.get(key)  # None stays None: the field decides whether it may be
    return cell


def rows(plan: FilePlan) -> Iterator[tuple[int, Any, str | None]]:
    """(number, row, None) per row of the file, (number, None, why) per line bad as a line."""
    if plan.format == "parquet":
        names = list(dict.fromkeys(column.key for column in plan.columns))
        for number, row in parquet_rows(plan.path, names):
            yield number, row, None
        return
    reader = csv_rows if plan.format == "csv" else tsv_rows  # atomic files are tab-separated
    lines = reader(plan.path, plan.header)
    try:
        yield from lines
    finally:
        lines.close()  # releases the file now, also when the caller stops early


def where(plan: FilePlan, number: int) -> Where:
    return Where(plan.file, plan.name, number, plan.unit)


def _cause(kind: str, error: BadField) -> str:
    """The summary's count for a field that failed: "missing user", "bad timestamp", ..."""
    missing = str(error).startswith(("is empty", "is null", "is missing"))
    return f"{'missing' if missing else 'bad'} {kind}"


def interaction_records(plan: FilePlan) -> Iterator[InteractionRecord | Rejected]:
    """The interactions of one file, in file order; the first bad field of a row is reported."""
    get = _get_value(plan)
    for number, row, why in rows(plan):
        at = where(plan, number)
        if row is None:
            yield Rejected(at, f"{at}: {why}", "malformed line", "interactions")
            continue
        values: dict[str, Any] = {}
        for column in plan.columns:
            try:
                value = get(row, column.key)
                if value is None:
                    raise BadField("is null")
                values[column.name] = parse_id(value) if column.kind in ("user", "item") else parse_number(value)
            except BadField as error:
                yield Rejected(at, f"{at}: {column.described} {error}", _cause(column.kind, error), "interactions")
                break
        else:
            yield InteractionRecord(values["user"], values["item"], values["timestamp"], values.get("rating"), at)


def entity_records(plan: FilePlan, entity: str, parser: FeatureParser) -> Iterator[EntityRecord | Rejected]:
    """The rows of one side table (`entity`: "users" or "items"), in file order."""
    get = _get_value(plan)
    convert = {"categorical": parser.categorical, "multi_valued": parser.multi_valued,
               "numeric": parser.numeric, "title": parser.title}
    for number, row, why in rows(plan):
        at = where(plan, number)
        if row is None:
            yield Rejected(at, f"{at}: {why}", "malformed line", entity)
            continue
        values: dict[str, Any] = {}
        for column in plan.columns:
            try:
                value = get(row, column.key)
                if column.kind == "id":
                    if value is None:
                        raise BadField("is null")
                    values["id"] = parse_id(value)
                else:
                    values[column.name] = convert[column.kind](value)
            except BadField as error:
                cause = _cause("id", error) if column.kind == "id" else f"bad {column.name}"
                yield Rejected(at, f"{at}: {column.described} {error}", cause, entity)
                break
        else:
            record_id, title = values.pop("id"), values.pop("title", None)
            yield EntityRecord(entity, record_id, title, values, at)
