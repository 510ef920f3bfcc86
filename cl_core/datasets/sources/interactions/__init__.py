"""Where user-item interactions come from: a CSV / TSV / Parquet / RecBole atomic file (or a
folder of them) plus optional side tables of user and item attributes; or "ml-100k".

    spec = InteractionsSourceSpec(user_column="user_id", item_column="movie_id",
                                  timestamp_column="ts", rating_column="stars",
                                  items=SideTableSpec(path="movies.csv", id_column="movie_id",
                                                      title_column="title",
                                                      multi_valued_columns=("genres",)))
    source = open_interactions_source("ratings.csv", spec)
    for record in source.interactions: ...      # InteractionRecord or Rejected, in file order
    for record in source.side["items"]: ...     # EntityRecord or Rejected

Everything that can be checked before reading rows is checked in `open_interactions_source`:
which files, their formats, header names and Parquet columns. Rows are read lazily, in one pass.

The spec is the `data.interactions` config section (`cl_core.config.InteractionsSourceSpec`).
The package, in reading order: `plan` (the spec resolved against one file), `fields` (one row ->
one record), `records` (the records and the stored schemas), `id_order` and `time_splits` (how
ids are numbered and interactions split), `rows` (the checks across rows, the tables, the
version id), `movielens` (the wheel's MovieLens 100k), `data` (reading a stored version back as
integer-coded arrays for training).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cl_core.config import InteractionsSourceSpec, SideTableSpec
from cl_core.datasets.errors import IngestError
from cl_core.datasets.movielens import NAME as ML_100K
from cl_core.datasets.movielens import movielens_description, movielens_spec
from cl_core.datasets.records import first_good
from cl_core.datasets.sources.interactions.fields import FeatureParser, entity_records, interaction_records
from cl_core.datasets.sources.interactions.plan import data_files, format_of, plan_file, side_table_columns
from cl_core.datasets.sources.interactions.records import (
    INTERACTIONS_SCHEMA,
    EntityRecord,
    InteractionRecord,
    Rejected,
)


@dataclass
class InteractionsSource:
    """An opened interactions source: one-pass record iterators plus what was resolved up front."""

    interactions: Iterator[InteractionRecord | Rejected]
    side: dict[str, Iterator[EntityRecord | Rejected]]  # "users" / "items", for the side tables given
    description: str  # the absolute path of the file or folder, or "recbole==1.2.1:ml-100k"
    files: list[Path]  # the interaction files, in reading order
    spec: InteractionsSourceSpec  # the spec read with (the built-in one for "ml-100k")


def _side_file(entity: str, table: SideTableSpec) -> Path:
    path = Path(table.path).expanduser()
    if not path.is_file():
        raise IngestError(f"the {entity} side table {str(path)!r} (data.interactions.{entity}.path) is not a file")
    return path.resolve()


def _read_all(plans) -> Iterator[InteractionRecord | Rejected]:
    for plan in plans:
        records = interaction_records(plan)
        try:
            yield from records
        finally:
            records.close()  # releases the open file now, also when the caller stops early


def open_interactions_source(
    source: str | Path, spec: InteractionsSourceSpec, limit: int | None = None
) -> InteractionsSource:
    """Open an interactions file, or a folder of them, and the spec's side tables, for one pass.

    `source` "ml-100k" is MovieLens 100k from the installed wheel `recbole==1.2.1`
    (`movielens`): its own columns and side tables, with `spec.split`. A folder means its files
    (not subfolders; hidden files and the side tables skipped) in name order: with format "auto"
    those with a .tsv, .csv, .parquet or .inter extension (the text ones may be gzipped), with an
    explicit format that format's. Side-table paths are relative to the working directory.

    Args:
        source: a file or folder path, or "ml-100k".
        spec: the format, the columns, the side tables and the split.
        limit: keep only the first `limit` good interactions (for small runs), None for all.

    Raises:
        IngestError: the source or a side table is missing or unreadable, holds no data file,
            a file's format cannot be told from its name, or the spec names columns a file
            lacks; "ml-100k" without the wheel installed.
        ValueError: `limit` is not a positive integer.
        TypeError: `spec` is not an `InteractionsSourceSpec`.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    if not isinstance(spec, InteractionsSourceSpec):
        raise TypeError(f"spec must be an InteractionsSourceSpec, got {type(spec).__name__}")
    description = None
    if str(source) == ML_100K:
        source, spec = movielens_spec(spec.split)
        description = movielens_description()
    path = Path(source).expanduser()
    if not path.exists():
        raise IngestError(f"interactions source {str(path)!r} does not exist")
    path = path.resolve()
    side_paths = {entity: _side_file(entity, table) for entity, table in spec.side_tables().items()}
    files = data_files(path, spec.format, set(side_paths.values())) if path.is_dir() else [path]
    columns = [(role, role, key) for role, key in spec.roles()]
    plans = []
    for file in files:
        fmt = format_of(file, spec.format)
        plans.append(plan_file(file, fmt, spec.header, columns))
    side = {}
    for entity, table in spec.side_tables().items():
        plan = plan_file(side_paths[entity], format_of(side_paths[entity], table.format), table.header, side_table_columns(table))
        side[entity] = entity_records(plan, entity, FeatureParser(table.separator, table.missing_values))
    interactions: Iterator = _read_all(plans)
    if limit is not None:
        interactions = first_good(interactions, limit, InteractionRecord)
    return InteractionsSource(
        interactions=interactions,
        side=side,
        description=description or str(path),
        files=[plan.path for plan in plans],
        spec=spec,
    )


__all__ = [
    "INTERACTIONS_SCHEMA",
    "ML_100K",
    "EntityRecord",
    "InteractionRecord",
    "InteractionsSource",
    "InteractionsSourceSpec",
    "Rejected",
    "SideTableSpec",
    "open_interactions_source",
]
