"""Where sentence pairs come from: a TSV, CSV, JSONL or Parquet file, or a folder of them.

    source = open_text_source("../shared/data/stsb", TextSourceSpec(text_columns=(5, 6),
                                                                    score_column=4))
    for record in source.records: ...          # TextPairRecord or BadRecord, in file order

Everything that can be checked before reading rows is checked in `open_text_source`: which
files, their formats, header names and Parquet columns; so a wrong spec fails at once, with
nothing read. Rows are read lazily, one file after the other, in one pass. TSV, CSV and JSONL
files may be gzipped (stsbenchmark.tsv.gz): they are decompressed as their rows are read.

The spec, which column holds each field, is the `data.text` config section
(`cl_core.config.TextSourceSpec`). The package, in reading order: `plan` (the spec resolved
against one file), `readers` (one per format), `fields` (one row -> one record), `records`
(the record and the stored schema), `rows` (the store's checks and table for text).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from cl_core.config import TEXT_FORMATS, TextSourceSpec
from cl_core.datasets.errors import IngestError
from cl_core.datasets.records import BadRecord, first_good
from cl_core.datasets.sources.carved_val import carve_val
from cl_core.datasets.sources.folder_files import folder_entries, no_files_error
from cl_core.datasets.sources.text.fields import FilePlan
from cl_core.datasets.sources.text.plan import plan_file, split_from_file_name
from cl_core.datasets.sources.text.readers import READERS, first_line, is_gzip, uncompressed_name
from cl_core.datasets.sources.text.records import TEXT_SCHEMA, TextPairRecord
from cl_core.defaults import VAL_FRACTION

# The format "auto" gives each extension; .csv is sniffed (STS-B's .csv files hold tabs).
AUTO_FORMATS = {
    ".tsv": "tsv",
    ".csv": "tsv or csv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
}
# With an explicit format, the extensions of a folder's files in that format. Plain .txt files
# are read only when the folder has none of these: a folder of sentence .txt files is data, a
# LICENSE.txt beside sts-train.csv is not (STS-B ships one; read as TSV it gives 128 bad rows).
EXPLICIT_SUFFIXES = {
    "tsv": {".tsv", ".csv"},
    "csv": {".csv", ".tsv"},
    "jsonl": {".jsonl", ".json"},
    "parquet": {".parquet"},
}
PLAIN_TEXT_FORMATS = ("tsv", "csv", "jsonl")


@dataclass
class TextSource:
    """An opened text source: a one-pass record iterator plus what was resolved up front."""

    records: Iterator[TextPairRecord | BadRecord]
    description: str  # the absolute path of the file or folder
    files: list[Path]  # the files read, in reading order
    formats: list[str]  # the format of each file
    # Per file, in reading order, the same records read on their own: calling each in turn
    # yields `records`. Picklable, for the `ray` engine.
    units: list[Callable[[], Iterator[TextPairRecord | BadRecord]]] = field(default_factory=list)
    val_carved: bool = False  # whether val was carved from the train rows (`carved_val`)


def _suffix(path: Path) -> str:
    """The extension that tells the format, under a .gz: "a.tsv.gz" -> ".tsv"."""
    return uncompressed_name(path).suffix.lower()


def _listed(path: Path, suffixes: set[str] | dict[str, str]) -> bool:
    # Parquet compresses its columns itself, so a folder's .parquet.gz is passed over like any
    # file of another kind (named on its own, it is refused with a reason).
    suffix = _suffix(path)
    return suffix in suffixes and not (suffix == ".parquet" and is_gzip(path))


def _format_of(path: Path, spec_format: str) -> str | None:
    """The format to read `path` with; None when "auto" cannot tell from the extension."""
    if spec_format != "auto":
        return spec_format
    auto = AUTO_FORMATS.get(_suffix(path))
    if auto == "tsv or csv":
        return "tsv" if b"\t" in first_line(path) else "csv"
    return auto


def _folder_files(folder: Path, spec_format: str) -> list[Path]:
    entries = folder_entries(folder)
    if spec_format == "auto":
        files = [p for p in entries if _listed(p, AUTO_FORMATS)]
        wanted = "/".join(sorted(AUTO_FORMATS))
    else:
        files = [p for p in entries if _listed(p, EXPLICIT_SUFFIXES[spec_format])]
        if not files and spec_format in PLAIN_TEXT_FORMATS:
            files = [p for p in entries if _listed(p, {".txt"})]
        wanted = "/".join(sorted(EXPLICIT_SUFFIXES[spec_format]))
        wanted += "/.txt" if spec_format in PLAIN_TEXT_FORMATS else ""
    if not files:
        raise no_files_error(folder, f"{wanted} file", spec_format, entries)
    return files


def _with_unique_id_prefixes(plans: list[FilePlan]) -> list[FilePlan]:
    """Files that share a stem (a.tsv and a.csv, a.tsv and a.tsv.gz) are told apart in default
    ids by their full names; a stem of its own stays the prefix, so those ids never change."""
    count = Counter(plan.id_prefix for plan in plans)
    return [
        replace(plan, id_prefix=plan.path.name) if count[plan.id_prefix] > 1 else plan
        for plan in plans
    ]


def read_file(plan: FilePlan) -> Iterator[TextPairRecord | BadRecord]:
    """The records of one planned file."""
    records = READERS[plan.format](plan)
    try:
        yield from records
    finally:
        records.close()  # releases the open file now, also when the caller stops early


def _read(plans: list[FilePlan]) -> Iterator[TextPairRecord | BadRecord]:
    for plan in plans:
        yield from read_file(plan)


def open_text_source(
    source: str | Path, spec: TextSourceSpec, limit: int | None = None, val_fraction: float = VAL_FRACTION
) -> TextSource:
    """Open a text file, or a folder of them, for one pass.

    A folder means its files (not subfolders; hidden files skipped) in name order: with
    format "auto" those with a .tsv, .csv, .jsonl, .json or .parquet extension, so a
    LICENSE.txt beside the data is ignored; with an explicit format those with that format's
    extensions (tsv and csv: .tsv/.csv, jsonl: .jsonl/.json), or, when there are none, its
    .txt files. A file named explicitly is read with `spec.format`, or by its extension under
    "auto". Any of these but Parquet may be gzipped: "a.tsv.gz" is found, told and read as
    "a.tsv" is. Ids default to "<file stem>:<line, 6 digits>" (Parquet: row), the stem being
    the name without ".gz" and the extension; files of the source that share a stem use their
    full names instead ("a.tsv:000001", "a.csv:000001"), so default ids never collide.

    Splits come from the file names ("sts-train.csv", "sts-dev.csv") or `spec.split_column`.
    When every file names a split, one of them train and none val (train and test files only),
    `val_fraction` of the train rows become val, chosen by a hash of the id (`carved_val`). A
    split column is not known before its rows are read, so a source split by a column is left
    as it is.

    Args:
        source: a file or folder path.
        spec: the format and the columns; see `TextSourceSpec`.
        limit: keep only the first `limit` good records (for small runs), None for all.
        val_fraction: see above (`data.val_fraction`; 0: none).

    Raises:
        IngestError: the source is missing or unreadable, holds no data file, a file's format
            cannot be told from its name, a file is gzipped Parquet, or the spec names columns
            a file lacks (header names, Parquet columns) or positions in a JSONL file. A .gz
            that is not valid gzip raises it, naming the file and the last line read, when
            found: at once if its first line is read here, else from `records`.
        ValueError: `limit` is not a positive integer, or `val_fraction` is outside [0, 1).
        TypeError: `spec` is not a `TextSourceSpec`.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    if not isinstance(spec, TextSourceSpec):
        raise TypeError(f"spec must be a TextSourceSpec, got {type(spec).__name__}")
    path = Path(source).expanduser()
    if not path.exists():
        raise IngestError(f"text source {str(path)!r} does not exist")
    path = path.resolve()
    files = _folder_files(path, spec.format) if path.is_dir() else [path]
    plans = []
    for file in files:
        try:
            fmt = _format_of(file, spec.format)
        except OSError as error:
            raise IngestError(f"cannot read {file}: {error}") from error
        if fmt is None:
            raise IngestError(
                f"cannot tell the format of {file} from its extension; set "
                f"TextSourceSpec(format=...) to one of {TEXT_FORMATS[1:]}"
            )
        if fmt == "parquet" and is_gzip(file):
            raise IngestError(
                f"{file} is gzipped Parquet, which is not read: Parquet compresses its "
                "columns itself, so gunzip it"
            )
        plans.append(plan_file(file, fmt, spec))
    plans = _with_unique_id_prefixes(plans)
    # A plan's split is None when a split column (or nothing) decides: then nothing is carved.
    records, units, carved = carve_val(_read(plans), [partial(read_file, plan) for plan in plans],
                                       [plan.split for plan in plans], val_fraction)
    if limit is not None:
        records = first_good(records, limit, TextPairRecord)
    return TextSource(
        records=records,
        description=str(path),
        files=[plan.path for plan in plans],
        formats=[plan.format for plan in plans],
        units=units,
        val_carved=carved,
    )


__all__ = [
    "TEXT_SCHEMA",
    "TextPairRecord",
    "TextSource",
    "TextSourceSpec",
    "open_text_source",
    "split_from_file_name",
]
