"""Resolve a spec against one file: its format, and which cell holds each field.

Header names become positions (TSV/CSV/atomic) and positions become names (Parquet) here, before
any row is read, so that a spec that does not fit a file fails at once and names what it has.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cl_core.config import INTERACTIONS_FORMATS, ColumnKey, SideTableSpec
from cl_core.datasets.errors import IngestError
from cl_core.datasets.sources.folder_files import folder_entries, no_files_error
from cl_core.datasets.sources.text.readers import first_line, header_names, is_gzip, uncompressed_name

# The format "auto" gives each extension; .csv is sniffed (a tab on line 1 means TSV), and
# RecBole's atomic files are named for what they hold.
AUTO_FORMATS = {
    ".tsv": "tsv",
    ".csv": "tsv or csv",
    ".parquet": "parquet",
    ".inter": "atomic",
    ".user": "atomic",
    ".item": "atomic",
}
EXPLICIT_SUFFIXES = {
    "tsv": {".tsv", ".csv", ".txt"},
    "csv": {".csv", ".tsv", ".txt"},
    "parquet": {".parquet"},
    "atomic": {".inter"},
}


@dataclass(frozen=True)
class Column:
    name: str  # "user", "item", "timestamp", "rating", "id", "title", or the feature's stored name
    kind: str  # the name for the fixed fields; "categorical", "multi_valued" or "numeric" for features
    key: int | str  # a 0-based position (TSV/CSV/atomic) or a Parquet column name, resolved
    described: str  # how reasons name it: "column 3 'rating' (rating)", "column 'age' (age)"


@dataclass(frozen=True)
class FilePlan:
    path: Path
    format: str  # "tsv", "csv", "parquet" or "atomic"
    header: bool
    columns: tuple[Column, ...]

    @property
    def unit(self) -> str:
        return "row" if self.format == "parquet" else "line"

    # Every row's place names the file: worked out once, not per row.
    @cached_property
    def file(self) -> str:
        return str(self.path)

    @cached_property
    def name(self) -> str:
        return self.path.name


def _suffix(path: Path) -> str:
    return uncompressed_name(path).suffix.lower()


def format_of(path: Path, spec_format: str) -> str:
    """The format to read `path` with.

    Raises:
        IngestError: "auto" cannot tell it from the extension, the file cannot be read to sniff
            it, or it is gzipped Parquet.
    """
    fmt = spec_format
    if fmt == "auto":
        fmt = AUTO_FORMATS.get(_suffix(path))
        if fmt is None:
            raise IngestError(
                f"cannot tell the format of {path} from its extension; set format to one of "
                f"{INTERACTIONS_FORMATS[1:]}"
            )
        if fmt == "tsv or csv":
            try:
                fmt = "tsv" if b"\t" in first_line(path) else "csv"
            except OSError as error:
                raise IngestError(f"cannot read {path}: {error}") from error
    if fmt == "parquet" and is_gzip(path):
        raise IngestError(f"{path} is gzipped Parquet, which is not read: Parquet compresses its columns itself, so gunzip it")
    return fmt


def data_files(folder: Path, spec_format: str, skip: set[Path]) -> list[Path]:
    """A folder's interaction files, in name order: not subfolders, hidden files or `skip` (the
    side tables); with "auto" those with a known extension, else the format's extensions."""
    entries = folder_entries(folder)
    wanted = AUTO_FORMATS if spec_format == "auto" else EXPLICIT_SUFFIXES[spec_format]
    files = [
        p for p in entries
        if _suffix(p) in wanted and p.resolve() not in skip and not (_suffix(p) == ".parquet" and is_gzip(p))
    ]
    if not files:
        raise no_files_error(folder, f"{'/'.join(sorted(wanted))} interactions file", spec_format, entries)
    return files


def _find_name(name: str, header: list[str], fmt: str) -> int | None:
    """The position of column `name` in `header`, or None. Atomic headers read `name:type`, and
    `name` alone finds them. Raises ValueError when the name is on more than one column."""
    matches = [i for i, cell in enumerate(header) if cell == name]
    if not matches and fmt == "atomic":
        matches = [i for i, cell in enumerate(header) if cell.split(":", 1)[0] == name]
    if len(matches) > 1:
        raise ValueError(name)
    return matches[0] if matches else None


def _resolve_tabular(path: Path, fmt: str, header: bool, keys: list[ColumnKey]) -> dict[ColumnKey, int]:
    names = [key for key in keys if isinstance(key, str)]
    if not names:
        return {key: key for key in keys}
    try:
        cells = header_names(path, "csv" if fmt == "csv" else "tsv") if header else None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise IngestError(f"cannot read the header line of {path}: {error}") from error
    if cells is None:
        raise IngestError(f"{path} is empty: it has no header line to find {names} in")
    resolved: dict[ColumnKey, int] = {key: key for key in keys if isinstance(key, int)}
    missing, repeated = [], []
    for name in names:
        try:
            position = _find_name(name, cells, fmt)
        except ValueError:
            repeated.append(name)
            continue
        if position is None:
            missing.append(name)
        else:
            resolved[name] = position
    if missing or repeated:
        problems = ([f"no column {missing}"] if missing else []) + ([f"more than one column {repeated}"] if repeated else [])
        raise IngestError(f"the header of {path} has {' and '.join(problems)}; its columns are {cells}")
    return resolved


def _resolve_parquet(path: Path, keys: list[ColumnKey]) -> dict[ColumnKey, str]:
    try:
        schema_names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as error:
        raise IngestError(f"cannot read Parquet file {path}: {error}") from error
    resolved, missing = {}, []
    for key in keys:
        if isinstance(key, int) and key < len(schema_names):
            resolved[key] = schema_names[key]
        elif isinstance(key, str) and key in schema_names:
            resolved[key] = key
        else:
            missing.append(key)
    if missing:
        raise IngestError(f"Parquet file {path} has no column {missing}; its columns are {schema_names}")
    return resolved


def _describe(fmt: str, name: str, key: ColumnKey, resolved: int | str) -> str:
    if fmt == "parquet":
        return f"column {resolved!r} ({name})"
    shown = f" {key!r}" if isinstance(key, str) else ""
    return f"column {resolved + 1}{shown} ({name})"


def plan_file(path: Path, fmt: str, header: bool, columns: list[tuple[str, str, ColumnKey]]) -> FilePlan:
    """How to read `path` in format `fmt`; `columns` are (name, kind, configured key).

    Raises:
        IngestError: the file lacks a column the spec names, or cannot be read far enough to tell.
    """
    keys = list(dict.fromkeys(key for _, _, key in columns))
    resolved = _resolve_parquet(path, keys) if fmt == "parquet" else _resolve_tabular(path, fmt, header, keys)
    return FilePlan(
        path=path,
        format=fmt,
        header=header if fmt != "parquet" else False,
        columns=tuple(Column(name, kind, resolved[key], _describe(fmt, name, key, resolved[key])) for name, kind, key in columns),
    )


def side_table_columns(spec: SideTableSpec) -> list[tuple[str, str, ColumnKey]]:
    """(name, kind, key) for each column of a side table: the id first, then the title and features."""
    columns = [("id", "id", spec.id_column)]
    if spec.title_column is not None:
        columns.append(("title", "title", spec.title_column))
    return columns + [(spec.feature_name(key), kind, key) for kind, key in spec.features()]
