"""One reader per text format: the records of one file, in file order.

The row iterators under them (`tsv_rows`, `csv_rows`, `parquet_rows`) know nothing of sentence
pairs; interaction sources read their files with them too.

Each reader yields a `TextPairRecord` per good row and a `BadRecord` per bad one, whose reason
names the file, the 1-based line (Parquet: row) and what is wrong. Files are read as UTF-8 (a
leading byte-order mark is dropped); an undecodable line is a bad row, not a failed ingest.
A TSV/CSV/JSONL file whose name ends in .gz is decompressed as it is read; a damaged one fails
the ingest, as it cannot say how many rows it lost.
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cl_core.datasets.errors import IngestError
from cl_core.datasets.records import BadRecord
from cl_core.datasets.sources.text.fields import FilePlan, build_record, cell, field
from cl_core.datasets.sources.text.records import TextPairRecord

_BOM = b"\xef\xbb\xbf"
PARQUET_BATCH_ROWS = 4096

Records = Iterator[TextPairRecord | BadRecord]
# (1-based line, the row's cells or None, why the line is bad or None), from `tsv_rows` / `csv_rows`.
Rows = Iterator[tuple[int, list[str] | None, str | None]]

# What reading a damaged .gz raises: a bad header or checksum, a truncated stream, bad data.
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def is_gzip(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def uncompressed_name(path: Path) -> Path:
    """The file's name without a trailing .gz, which tells its format: "a.tsv.gz" -> "a.tsv"."""
    return Path(path.name[:-3] if is_gzip(path) else path.name)


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based number, bytes with terminator) per line of `path`, decompressed when .gz."""
    number = 0
    try:
        # gzip.open decompresses as lines are read, so a large file is never unpacked whole.
        with gzip.open(path, "rb") if is_gzip(path) else open(path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                yield number, raw
    except _GZIP_ERRORS as error:
        raise IngestError(f"cannot decompress {path} after line {number}: {error}") from error


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
    with closing(_raw_lines(path)) as lines:
        for number, raw in lines:
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


def tsv_rows(path: Path, header: bool) -> Rows:
    """(number, cells, None) per data line of a tab-separated file, (number, None, why) per line
    bad as a line. Split on tabs only, with no quoting: a quote character is part of the cell
    (STS-B's sentences have them)."""
    for number, text, why in _lines(path, skip_first=header):
        yield (number, None, why) if text is None else (number, text.split("\t"), None)


def read_tsv(plan: FilePlan) -> Records:
    """Tab-separated, by position (see `tsv_rows`); extra trailing columns are ignored."""
    for number, row, why in tsv_rows(plan.path, plan.header):
        yield plan.bad(number, why) if row is None else build_record(plan, number, row, cell)


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
    with closing(_raw_lines(path)) as lines:
        for number, raw in lines:
            if number == 1:
                raw = raw.removeprefix(_BOM)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as error:
                undecodable[number] = _undecodable(error)
                yield raw.decode("utf-8", errors="replace")


def csv_rows(path: Path, header: bool) -> Rows:
    """(number, cells, None) per data row of a comma-separated file with CSV quoting (commas
    occur in sentences), (number, None, why) per bad one; a row may span lines, and is numbered
    by the line it starts on."""
    undecodable: dict[int, str] = {}
    lines = _decoded_lines(path, undecodable)
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
            if header and start == 1:
                continue
            if row is not None and not any(c.strip() for c in row):
                blank.append(start)
                continue
            for line in blank:
                yield line, None, "the line is blank"
            blank.clear()
            problem = problem or next(
                (undecodable[n] for n in range(start, end + 1) if n in undecodable), None
            )
            yield (start, None, problem) if problem is not None else (start, row, None)
    finally:
        lines.close()  # closes the file now, also when the caller stops early


def read_csv(plan: FilePlan) -> Records:
    """Comma-separated with CSV quoting, by position (see `csv_rows`)."""
    rows = csv_rows(plan.path, plan.header)
    try:
        for number, row, why in rows:
            yield plan.bad(number, why) if row is None else build_record(plan, number, row, cell)
    finally:
        rows.close()


def parquet_rows(path: Path, names: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(number, {name: value}) per row of the columns `names`, numbered from 1. A damaged file
    fails the ingest, as it cannot say how many rows it lost."""
    number = 0
    try:
        with pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=names):
                for row in batch.to_pylist():
                    number += 1
                    yield number, row
    except pa.ArrowException as error:
        raise IngestError(f"cannot read Parquet file {path} after row {number}: {error}") from error


def read_parquet(plan: FilePlan) -> Records:
    """Columns by name (see `parquet_rows`)."""
    names = list(dict.fromkeys(column.key for column in plan.columns))
    for number, row in parquet_rows(plan.path, names):
        yield build_record(plan, number, row, field)


READERS = {"tsv": read_tsv, "csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet}


def first_line(path: Path) -> bytes:
    """Line 1 of `path` with its terminator, b"" when the file is empty."""
    with closing(_raw_lines(path)) as lines:
        return next(lines, (0, b""))[1]


def header_names(path: Path, format: str) -> list[str] | None:
    """The column names on line 1 of a TSV/CSV, stripped; None when the file is empty.

    Raises IngestError for a damaged .gz, UnicodeDecodeError for a header that is not UTF-8.
    """
    with closing(_raw_lines(path)) as lines:
        # Strict: unlike a data row, an undecodable header cannot be skipped.
        text = ((raw.removeprefix(_BOM) if n == 1 else raw).decode("utf-8") for n, raw in lines)
        if format == "csv":
            first = next(csv.reader(text), None)  # a quoted header name may span lines
        else:
            line = next(text, None)
            first = line.rstrip("\r\n").split("\t") if line is not None else None
    return None if first is None else [name.strip() for name in first]
