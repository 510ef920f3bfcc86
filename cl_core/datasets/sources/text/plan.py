"""Resolve a `TextSourceSpec` against one file: which cell holds each field, and its split.

Header names become positions (TSV/CSV) and positions become names (Parquet) here, before any
row is read, so that a spec that does not fit a file fails at once and names what the file has.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cl_core.config import ColumnKey, TextSourceSpec
from cl_core.datasets.errors import IngestError
from cl_core.datasets.sources.text.fields import Column, FilePlan
from cl_core.datasets.sources.text.readers import header_names, uncompressed_name
from cl_core.datasets.splits import split_in_name


def file_stem(path: str | Path) -> str:
    """The name without compression and format suffixes: "sts-dev.tsv.gz" -> "sts-dev"."""
    return uncompressed_name(Path(path)).stem


def split_from_file_name(path: str | Path) -> str | None:
    """The split a word of the file's stem names (`cl_core.datasets.splits`), else None:
    "sts-train" -> "train", "sts-dev" -> "val", "pairs_test_2" -> "test", "trainset" -> None."""
    return split_in_name(file_stem(path))


def _resolve_tabular(path: Path, fmt: str, spec: TextSourceSpec) -> dict[ColumnKey, int]:
    """TSV/CSV: every column of the spec as a 0-based position, header names looked up."""
    names = [key for _, key in spec.roles() if isinstance(key, str)]
    if not names:
        return {key: key for _, key in spec.roles()}
    if not spec.header:
        raise IngestError(
            f"{path} is read as {fmt.upper()} without a header line (header=False), so columns "
            f"must be 0-based positions, not names: {names}"
        )
    try:
        header = header_names(path, fmt)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise IngestError(f"cannot read the header line of {path}: {error}") from error
    if header is None:
        raise IngestError(f"{path} is empty: it has no header line to find {names} in")
    missing = [n for n in names if n not in header]
    repeated = [n for n in names if header.count(n) > 1]
    if missing or repeated:
        raise IngestError(
            f"the header of {path} has {'no column ' + str(missing) if missing else ''}"
            f"{' and ' if missing and repeated else ''}"
            f"{'more than one column ' + str(repeated) if repeated else ''}; its columns are "
            f"{header}"
        )
    positions = {key: key for _, key in spec.roles() if isinstance(key, int)}
    return positions | {n: header.index(n) for n in names}


def _resolve_parquet(path: Path, spec: TextSourceSpec) -> dict[ColumnKey, str]:
    """Parquet: every column of the spec as a column name, positions looked up."""
    try:
        schema_names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as error:
        raise IngestError(f"cannot read Parquet file {path}: {error}") from error
    resolved, missing = {}, []
    for _, key in spec.roles():
        if isinstance(key, int):
            ok = key < len(schema_names)
            resolved[key] = schema_names[key] if ok else None
        else:
            ok = key in schema_names
            resolved[key] = key
        if not ok:
            missing.append(key)
    if missing:
        raise IngestError(
            f"Parquet file {path} has no column {missing}; its columns are {schema_names}"
        )
    return resolved


def _describe(fmt: str, role: str, key: ColumnKey, resolved: ColumnKey) -> str:
    if fmt == "jsonl":
        return f"field {key!r} ({role})"
    if fmt == "parquet":
        return f"column {resolved!r} ({role})"
    name = f" {key!r}" if isinstance(key, str) else ""
    return f"column {resolved + 1}{name} ({role})"


def plan_file(path: Path, fmt: str, spec: TextSourceSpec) -> FilePlan:
    """How to read `path` in format `fmt` ("tsv", "csv", "jsonl", "parquet") under `spec`.

    Raises:
        IngestError: the file lacks a column the spec names (a header name, a Parquet column
            or position), cannot be read far enough to tell, or is JSONL and the spec gives
            positions.
    """
    if fmt in ("tsv", "csv"):
        resolved = _resolve_tabular(path, fmt, spec)
    elif fmt == "parquet":
        resolved = _resolve_parquet(path, spec)
    else:
        positions = [f"{role}={key}" for role, key in spec.roles() if isinstance(key, int)]
        if positions:
            raise IngestError(
                f"{path} is JSONL, whose fields have no order: name them in the spec, got "
                f"positions {', '.join(positions)}"
            )
        resolved = {key: key for _, key in spec.roles()}
    # The id first, so that a row's other bad fields are reported under its id.
    roles = sorted(spec.roles(), key=lambda role_key: role_key[0] != "id")
    columns = tuple(
        Column(role, resolved[key], _describe(fmt, role, key, resolved[key]))
        for role, key in roles
    )
    split = None if spec.split_column is not None else split_from_file_name(path)
    return FilePlan(
        path=path, format=fmt, columns=columns, split=split, header=spec.header,
        id_prefix=file_stem(path),
    )
