"""One reader per text format: the records of one file, in file order.

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

import pyarrow as pa
import pyarrow.parquet as pq

from cl_core.datasets.errors import IngestError
from cl_core.datasets.records import BadRecord
from cl_core.datasets.sources.text.fields import FilePlan, build_record, cell, field
from cl_core.datasets.sources.text.records import TextPairRecord

_BOM = b"\xef\xbb\xbf"
PARQUET_BATCH_ROWS = 4096

Records = Iterator[TextPairRecord | BadRecord]

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
    with closing(_raw_lines(path)) as lines:
        for number, raw in lines:
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
