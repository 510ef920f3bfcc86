"""The rows an interaction source yields and the Parquet schemas a version stores them under.

A version holds three tables:

    part-*.parquet    INTERACTIONS_SCHEMA: user, item, timestamp, rating, split; sorted by
                      (user, timestamp, item) in id order (`id_order`)
    users-*.parquet   one row per user of the interactions, in id order: row i is user index i;
    items-*.parquet   likewise for items. Columns `id`, `title`, then the side features
                      (`entity_schema`), null where the side table has no row for the id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from cl_core.datasets.records import BadRecord

INTERACTIONS_SCHEMA = pa.schema(
    [
        pa.field("user", pa.string(), nullable=False),  # the source's user id
        pa.field("item", pa.string(), nullable=False),  # the source's item id
        pa.field("timestamp", pa.float64(), nullable=False),  # as the source gives it, e.g. Unix seconds
        pa.field("rating", pa.float64(), nullable=True),  # rating or weight; None without a rating column
        pa.field("split", pa.string(), nullable=False),  # one of records.SPLITS, by time (time_splits)
    ]
)

ENTITIES = ("users", "items")
FEATURE_TYPES = {
    "categorical": pa.string(),
    "multi_valued": pa.list_(pa.string()),
    "numeric": pa.float64(),
}


def entity_schema(features: dict[str, str]) -> pa.Schema:
    """The users/items table's schema: id, title, then each feature ({name: type}) in order."""
    fields = [pa.field("id", pa.string(), nullable=False), pa.field("title", pa.string(), nullable=True)]
    return pa.schema(fields + [pa.field(name, FEATURE_TYPES[kind], nullable=True) for name, kind in features.items()])


@dataclass(frozen=True)
class Where:
    """A row's place in the source: the file, and its 1-based line (Parquet: row)."""

    file: str  # the absolute path
    name: str  # the file name, as reasons start
    number: int
    unit: str  # "line" or "row"

    def __str__(self) -> str:
        return f"{self.name} {self.unit} {self.number}"


@dataclass(frozen=True)
class InteractionRecord:
    """One interaction read from a source, its fields parsed, not yet checked against the others."""

    user: str
    item: str
    timestamp: float
    rating: float | None
    where: Where


@dataclass(frozen=True)
class EntityRecord:
    """One row of a users or items side table, parsed: `features` maps each feature name to a
    str (categorical), a tuple of str (multi-valued), a float (numeric), or None when missing."""

    entity: str  # "users" or "items"
    id: str
    title: str | None
    features: dict[str, Any]
    where: Where


@dataclass(frozen=True)
class Rejected:
    """A row that cannot be stored: where, why (the reason names file, line and field), and a
    short cause that the ingest summary counts ("bad timestamp", "duplicate", ...)."""

    where: Where
    reason: str
    cause: str
    table: str  # "interactions", "users" or "items"

    def bad_record(self) -> BadRecord:
        """The quarantine entry: {"id": "<file> line <n>", "source": <path>, "reason": ...}."""
        return BadRecord(str(self.where), self.where.file, self.reason)
