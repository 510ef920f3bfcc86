"""One reader per text format: the records of one file, in file order.

Each reader yields a `TextPairRecord` per good row and a `BadRecord` per bad one, whose reason
names the file, the 1-based line (Parquet: row) and what is wrong. Files are read as UTF-8 (a
leading byte-order mark is dropped); an undecodable line is a bad row, not a failed ingest.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cl_core.datasets.errors import IngestError
from cl_core.datasets.records import BadRecord
from cl_core.datasets.text_fields import FilePlan, build_record, cell, field
from cl_core.datasets.text_records import TextPairRecord

_BOM = b"\xef\xbb\xbf"
PARQUET_BATCH_ROWS = 4096

Records = Iterator[TextPairRecord | BadRecord]


def _strip_terminator(raw: bytes) -> bytes:
    # Only the line terminator: a trailing tab is an (empty) last column, not whitespace.
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    return raw[:-1] if raw.endswith(b"\r") else raw


def _undecodable(error: UnicodeDecodeError) -> str:
    return f"the line is not valid UTF-8 ({error.reason} at byte {error.start})"


def _lines(path: Path, skip_first: bool) -> Iterator[tuple[int, str | None, str | None]]:
    """(number, text, None) per data line, (number, None, why) per line bad as a line.

    A blank (empty or whitespace-only) line is bad only when data follows it: blank lines at
    the end of a file are what editors leave behind, one in the middle is a broken row.
    """
    blank: list[int] = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if number == 1:
                if skip_first:
                    continue
                raw = raw.removeprefix(_BOM)
            try:
                text, why = _strip_terminator(raw).decode("utf-8"), None
            except UnicodeDecodeError as error:
                text, why = None, _undecodable(error)
            if text is not None and not text.strip():
                blank.append(number)
                continue
            for line in blank:
                yield line, None, "the line is blank"
            blank.clear()
            yield number, text, why


def read_tsv(plan: FilePlan) -> Records:
    """Tab-separated, by position, with no quoting: a quote character is part of the sentence
    (STS-B has them), and extra trailing columns are ignored."""
    for number, text, why in _lines(plan.path, skip_first=plan.header):
        if text is None:
            yield plan.bad(number, why)
        else:
            yield build_record(plan, number, text.split("\t"), cell)


def read_jsonl(plan: FilePlan) -> Records:
    """One JSON object per line, fields by name."""
    for number, text, why in _lines(plan.path, skip_first=False):
        if text is None:
            yield plan.bad(number, why)
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            yield plan.bad(number, f"not valid JSON ({error.msg} at column {error.colno})")
            continue
        if not isinstance(row, dict):
            yield plan.bad(number, f"a JSON {type(row).__name__}, not an object")
            continue
        yield build_record(plan, number, row, field)


def _decoded_lines(path: Path, undecodable: dict[int, str]) -> Iterator[str]:
    """The lines of `path` with terminators, for the csv module; an undecodable line is passed
    on with replacement characters and its number noted in `undecodable`, so that the row it
    belongs to (CSV rows may span lines) can be reported bad."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if number == 1:
                raw = raw.removeprefix(_BOM)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as error:
                undecodable[number] = _undecodable(error)
                yield raw.decode("utf-8", errors="replace")


def read_csv(plan: FilePlan) -> Records:
    """Comma-separated with CSV quoting (commas occur in sentences); a row may span lines, and
    is numbered by the line it starts on."""
    undecodable: dict[int, str] = {}
    lines = _decoded_lines(plan.path, undecodable)
    # strict: a quote left open at the end of the file is an error, not a silently merged row.
    reader = csv.reader(lines, strict=True)
    blank: list[int] = []
    end = 0  # the last line the reader consumed
    try:
        while True:
            start = end + 1
            try:
                row = next(reader)
                problem = None
            except StopIteration:
                return
            except csv.Error as error:
                row, problem = None, f"not valid CSV ({error})"
            end = reader.line_num
            if plan.header and start == 1:
                continue
            if row is not None and not any(c.strip() for c in row):
                blank.append(start)
                continue
            for line in blank:
                yield plan.bad(line, "the line is blank")
            blank.clear()
            problem = problem or next(
                (undecodable[n] for n in range(start, end + 1) if n in undecodable), None
            )
            if problem is not None:
                yield plan.bad(start, problem)
            else:
                yield build_record(plan, start, row, cell)
    finally:
        lines.close()  # closes the file now, also when the caller stops early


def read_parquet(plan: FilePlan) -> Records:
    """Columns by name; rows numbered from 1. A damaged file fails the ingest, as it cannot
    say how many rows it lost."""
    names = list(dict.fromkeys(column.key for column in plan.columns))
    number = 0
    try:
        with pq.ParquetFile(plan.path) as parquet:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=names):
                for row in batch.to_pylist():
                    number += 1
                    yield build_record(plan, number, row, field)
    except pa.ArrowException as error:
        raise IngestError(
            f"cannot read Parquet file {plan.path} after row {number}: {error}"
        ) from error


READERS = {"tsv": read_tsv, "csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet}


def header_names(path: Path, format: str) -> list[str] | None:
    """The column names on line 1 of a TSV/CSV, stripped; None when the file is empty."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        if format == "csv":
            first = next(csv.reader(handle), None)
        else:
            line = handle.readline()
            first = line.rstrip("\r\n").split("\t") if line else None
    return None if first is None else [name.strip() for name in first]
