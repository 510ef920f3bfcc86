"""The good rows of one interactions ingest: the checks across rows, the tables, the version id.

Rows arrive parsed (`fields`); what needs the other rows is checked here: a duplicate
(user, item, timestamp), a side-table row for an id that no interaction has, or a side-table id
given twice. Splits are decided once every interaction is in (`time_splits`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cl_core.config import InteractionsSourceSpec
from cl_core.datasets.errors import IngestError
from cl_core.datasets.manifest import build_interactions_manifest
from cl_core.datasets.parquet_parts import write_parts
from cl_core.datasets.records import SPLITS
from cl_core.datasets.sources.interactions.id_order import sorted_ids
from cl_core.datasets.sources.interactions.records import (
    ENTITIES,
    INTERACTIONS_SCHEMA,
    EntityRecord,
    InteractionRecord,
    Rejected,
    Where,
    entity_schema,
)
from cl_core.datasets.sources.interactions.time_splits import split_codes

if TYPE_CHECKING:
    from cl_core.datasets.sources.interactions import InteractionsSource

TABLES = ("interactions", *ENTITIES)


def _singular(entity: str) -> str:
    return entity.removesuffix("s")


class InteractionRows:
    """The good rows of one interactions ingest, and the rejected ones.

    Args:
        spec: the source's spec: its side tables' features and the split.
        limited: the ingest keeps only the first N interactions; side-table rows of ids outside
            them are then passed over instead of quarantined.
    """

    kind = "interactions"

    def __init__(self, spec: InteractionsSourceSpec, limited: bool = False) -> None:
        self.spec = spec
        self.limited = limited
        self.users: list[str] = []
        self.items: list[str] = []
        self.timestamps: list[float] = []
        self.ratings: list[float | None] = []
        self.first_seen: dict[tuple[str, str, float], Where] = {}
        self.entities: dict[str, dict[str, EntityRecord]] = {entity: {} for entity in ENTITIES}
        self.features = {
            entity: {table.feature_name(key): kind for kind, key in table.features()}
            for entity, table in spec.side_tables().items()
        }
        self.rejected: list[Rejected] = []
        self.outside_limit = Counter()

    def __len__(self) -> int:
        return len(self.users)

    # ---- adding rows ---------------------------------------------------------------------

    def add_interaction(self, record: InteractionRecord | Rejected) -> None:
        if isinstance(record, Rejected):
            self.rejected.append(record)
            return
        key = (record.user, record.item, record.timestamp)
        first = self.first_seen.setdefault(key, record.where)
        if first is not record.where:
            self.rejected.append(Rejected(
                record.where,
                f"{record.where}: duplicate (user, item, timestamp) ({record.user!r}, {record.item!r}, "
                f"{record.timestamp!r}), first at {first}",
                "duplicate (user, item, timestamp)",
                "interactions",
            ))
            return
        self.users.append(record.user)
        self.items.append(record.item)
        self.timestamps.append(record.timestamp)
        self.ratings.append(record.rating)

    def add_entity(self, record: EntityRecord | Rejected, known: set[str]) -> None:
        """A side-table row; `known` are the ids of its kind that the good interactions have."""
        if isinstance(record, Rejected):
            self.rejected.append(record)
            return
        rows = self.entities[record.entity]
        if record.id not in known:
            if self.limited:
                self.outside_limit[record.entity] += 1
                return
            self.rejected.append(Rejected(
                record.where,
                f"{record.where}: {_singular(record.entity)} id {record.id!r} is in no interaction",
                "unknown id",
                record.entity,
            ))
            return
        first = rows.setdefault(record.id, record)
        if first is not record:
            self.rejected.append(Rejected(
                record.where, f"{record.where}: duplicate id {record.id!r}, first at {first.where}", "duplicate id",
                record.entity,
            ))

    # ---- judging the whole ---------------------------------------------------------------

    def good_counts(self) -> dict[str, int]:
        return {"interactions": len(self), **{entity: len(self.entities[entity]) for entity in ENTITIES}}

    def bad_counts(self) -> dict[str, int]:
        counts = Counter(r.table for r in self.rejected)
        return {table: counts[table] for table in TABLES}

    def rejected_by_cause(self) -> dict[str, dict[str, int]]:
        """{table: {cause: count}} for the tables with rejected rows."""
        counts: dict[str, Counter] = defaultdict(Counter)
        for rejected in self.rejected:
            counts[rejected.table][rejected.cause] += 1
        return {table: dict(sorted(counts[table].items())) for table in TABLES if counts[table]}

    def too_many_bad(self, max_bad_fraction: float) -> str | None:
        """Why the ingest must fail: the first table whose bad / (good + bad) exceeds the bound."""
        good, bad = self.good_counts(), self.bad_counts()
        for table in TABLES:
            total = good[table] + bad[table]
            if total and bad[table] / total > max_bad_fraction:
                return (
                    f"{bad[table]} of {total} {table} rows are bad ({bad[table] / total:.1%} > max_bad_fraction "
                    f"{max_bad_fraction:.1%})"
                )
        return None

    # ---- the stored tables ---------------------------------------------------------------

    def tables(self) -> tuple[pa.Table, dict[str, pa.Table], str]:
        """The interactions sorted by (user, timestamp, item) in id order with their splits, the
        users and items tables (row i: index i), and the version id: sha256 over the feature
        names and types, every interaction (user, item, timestamp, rating, split) in that order,
        and every users/items row, so neither row order nor file names change it."""
        ids = {"users": sorted_ids(self.users), "items": sorted_ids(self.items)}
        position = {entity: {value: i for i, value in enumerate(ids[entity])} for entity in ENTITIES}
        users = np.fromiter((position["users"][u] for u in self.users), np.int64, len(self))  # (N,)
        items = np.fromiter((position["items"][i] for i in self.items), np.int64, len(self))  # (N,)
        timestamps = np.asarray(self.timestamps, dtype=np.float64)  # (N,)
        codes = split_codes(self.spec.split, users, timestamps, items)  # item index = rank in id order
        order = np.lexsort((items, timestamps, users))
        split_names = np.asarray(SPLITS, dtype=object)[codes[order]]
        ratings = [self.ratings[i] for i in order]
        interactions = pa.table(
            [
                pa.array(np.asarray(ids["users"], dtype=object)[users[order]], pa.string()),
                pa.array(np.asarray(ids["items"], dtype=object)[items[order]], pa.string()),
                pa.array(timestamps[order], pa.float64()),
                pa.array(ratings, pa.float64()),
                pa.array(split_names, pa.string()),
            ],
            schema=INTERACTIONS_SCHEMA,
        )
        version_hash = hashlib.sha256()
        version_hash.update(json.dumps({e: self.features.get(e, {}) for e in ENTITIES}, sort_keys=True).encode() + b"\n")
        for user, item, when, rating, split in zip(
            interactions["user"].to_pylist(), interactions["item"].to_pylist(), timestamps[order].tolist(), ratings,
            split_names.tolist(), strict=True,
        ):
            version_hash.update(json.dumps([user, item, when, rating, split]).encode() + b"\n")
        entity_tables = {}
        for entity in ENTITIES:
            entity_tables[entity] = self._entity_table(entity, ids[entity])
            for row in entity_tables[entity].to_pylist():
                version_hash.update(json.dumps([entity, *row.values()], ensure_ascii=False).encode() + b"\n")
        return interactions, entity_tables, version_hash.hexdigest()[:16]

    def _entity_table(self, entity: str, ids: list[str]) -> pa.Table:
        features = self.features.get(entity, {})
        rows = self.entities[entity]
        columns: dict[str, list[Any]] = {"id": ids, "title": [], **{name: [] for name in features}}
        for value in ids:
            row = rows.get(value)
            columns["title"].append(row.title if row else None)
            for name, kind in features.items():
                feature = row.features.get(name) if row else None
                if kind == "multi_valued":
                    feature = list(feature) if feature else None  # no values and no row: both unknown
                columns[name].append(feature)
        return pa.table(columns, schema=entity_schema(features))

    def split_counts(self, interactions: pa.Table) -> Counter:
        return Counter(interactions["split"].to_pylist())

    def summary(self, entities: dict[str, pa.Table]) -> dict[str, Any]:
        """The ingest summary's counts (`IngestResult.details`)."""
        return {
            "users": entities["users"].num_rows,
            "items": entities["items"].num_rows,
            "side_rows": {entity: len(self.entities[entity]) for entity in self.spec.side_tables()},
            "quarantined_by_table": self.bad_counts(),
            "quarantined_by_cause": self.rejected_by_cause(),
            **({"side_rows_outside_limit": dict(self.outside_limit)} if self.limited else {}),
        }

    def manifest_entities(self, entities: dict[str, pa.Table], files: dict[str, list[str]]) -> dict[str, Any]:
        return {
            entity: {
                "rows": entities[entity].num_rows,
                "files": files[entity],
                "features": self.features.get(entity, {}),
                "with_side_row": len(self.entities[entity]),
                "titles": entities[entity]["title"].null_count < entities[entity].num_rows,
            }
            for entity in ENTITIES
        }


def read_source(source: InteractionsSource, rows: InteractionRows, progress: Callable[[int], None] | None,
                every: int) -> None:
    """One pass over the interactions, then over each side table (whose ids are judged against
    the good interactions'); `progress(n)` every `every` interaction rows and at the end.

    Raises:
        IngestError: the source became unreadable partway (readers report per-row damage as
            `Rejected`; an OSError escaping them means the file or disk failed).
    """
    seen = 0
    try:
        for record in source.interactions:
            seen += 1
            if progress is not None and seen % every == 0:
                progress(seen)
            rows.add_interaction(record)
        known = {"users": set(rows.users), "items": set(rows.items)}
        for entity, records in source.side.items():
            for record in records:
                rows.add_entity(record, known[entity])
    except OSError as error:
        raise IngestError(f"source {source.description} became unreadable: {error}") from error
    if progress is not None:
        progress(seen)


def write_version(folder: Path, rows: InteractionRows, interactions: pa.Table, entities: dict[str, pa.Table], *,
                  name: str, version: str, source: str, rows_per_file: int, row_group_rows: int) -> dict[str, Any]:
    """Write the three tables into `folder` and return the version's manifest."""
    files = write_parts(interactions, folder, rows_per_file=rows_per_file, row_group_rows=row_group_rows)
    entity_files = {
        entity: write_parts(entities[entity], folder, rows_per_file=rows_per_file, row_group_rows=row_group_rows,
                            prefix=entity)
        for entity in ENTITIES
    }
    timestamps = interactions["timestamp"]
    return build_interactions_manifest(
        name=name,
        version=version,
        source=source,
        splits=rows.split_counts(interactions),
        entities=rows.manifest_entities(entities, entity_files),
        split_rule=rows.spec.split.model_dump(mode="json"),
        rated_rows=interactions.num_rows - interactions["rating"].null_count,
        timestamps=(pc.min(timestamps).as_py(), pc.max(timestamps).as_py()),
        quarantined=rows.bad_counts(),
        quarantined_by_cause=rows.rejected_by_cause(),
        files=files,
    )
