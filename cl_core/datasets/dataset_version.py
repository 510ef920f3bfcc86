"""One immutable, published dataset version: read whole or stream in batches.

Its columns are IMAGE_SCHEMA's, TEXT_SCHEMA's or INTERACTIONS_SCHEMA's, by the manifest's `kind`;
an interactions version also holds a users and an items table (`entity_files`), which
`cl_core.datasets.sources.interactions.data.read_interactions` reads with the interactions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from cl_core.datasets.manifest import manifest_kind, read_manifest
from cl_core.datasets.records import SPLITS
from cl_core.datasets.sources.interactions.records import ENTITIES
from cl_core.modalities import modality
from cl_core.modalities.image import IMAGE
from cl_core.modalities.interactions import INTERACTIONS


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")


def _check_columns(columns: Sequence[str] | None, schema: pa.Schema) -> list[str] | None:
    if columns is None:
        return None
    unknown = [c for c in columns if c not in schema.names]
    if unknown:
        raise ValueError(f"unknown columns {unknown}; the columns are {schema.names}")
    return list(columns)


class DatasetVersion:
    """`root/<name>/<version>/`: Parquet parts plus `manifest.json`, never modified once written.

    Rows are stored in id order within each of the version id's buckets, buckets in order
    (`cl_core.datasets.version_id.bucket_order`), whichever engine ingested them; interactions
    in their own order (`cl_core.datasets.sources.interactions.records`). `kind` is a modality name
    (`cl_core.modalities`), its record naming the schema; `channels` and
    `class_names` are image attributes, `pairs` a text one. Code outside `cl_core.datasets`
    reads these properties, never the manifest dict.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest: dict[str, Any] = read_manifest(self.path)
        self.name: str = self.manifest["name"]
        self.version: str = self.manifest["version"]
        self.files: list[Path] = [self.path / f for f in self.manifest["files"]]
        self.schema: pa.Schema = modality(self.kind).part("schema")

    def __repr__(self) -> str:
        return f"DatasetVersion({self.name!r}, {self.version!r}, rows={self.num_rows()})"

    @property
    def kind(self) -> str:
        """The kind of rows: "image" (IMAGE_SCHEMA), "text" (TEXT_SCHEMA) or "interactions"
        (INTERACTIONS_SCHEMA)."""
        return manifest_kind(self.manifest)

    def entity_files(self, entity: str) -> list[Path]:
        """The Parquet parts of an interactions version's "users" or "items" table.

        Raises:
            TypeError: this is not an interactions version.
            ValueError: `entity` is neither "users" nor "items".
        """
        if self.kind != INTERACTIONS.name:
            raise TypeError(f"{self!r} is a {self.kind} dataset: it has no users or items table")
        if entity not in ENTITIES:
            raise ValueError(f"entity must be one of {ENTITIES}, got {entity!r}")
        return [self.path / f for f in self.manifest["entities"][entity]["files"]]

    @property
    def class_names(self) -> list[str] | None:
        """Image label names; None when unnamed, and always for text."""
        return self.manifest.get("class_names")

    @property
    def channels(self) -> int:
        """1 or 3 for images.

        Raises:
            TypeError: this is a text version.
        """
        if self.kind != IMAGE.name:
            raise TypeError(f"{self!r} is a {self.kind} dataset: it has no image channels")
        return self.manifest["channels"]

    @property
    def num_classes(self) -> int:
        return self.manifest["num_classes"]

    @property
    def splits(self) -> dict[str, int]:
        """Rows per split, for the splits that have any (a copy: the manifest stays as read)."""
        return dict(self.manifest["splits"])

    @property
    def unlabeled_rows(self) -> int:
        """Rows without a label."""
        return self.manifest.get("unlabeled_rows", 0)

    @property
    def pairs(self) -> int:
        """Text rows holding a sentence pair (a text2); the others are single sentences. 0 for
        images."""
        return self.manifest.get("pairs", 0)

    @property
    def created_at(self) -> str:
        """When the version was published (ISO 8601, UTC; "" for a version written before the
        manifest said so): the order `cl_core.evaluation.version_order` keeps."""
        return str(self.manifest.get("created_at", ""))

    @property
    def split_rule(self) -> dict[str, Any]:
        """How an interactions version was split ({"method": "time_cutoff", "test_from": ...,
        "val_from": ...} or leave-last-out's); {} for images and text (split by id or by source)."""
        return dict(self.manifest.get("split_rule", {}))

    def num_rows(self, split: str | None = None) -> int:
        """Rows in the version, or in one split; from the manifest, no file is opened."""
        _check_split(split)
        if split is None:
            return self.manifest["rows"]
        return self.splits.get(split, 0)

    def read(self, split: str | None = None, columns: Sequence[str] | None = None) -> pa.Table:
        """The whole version (or one split) as one table, in stored order."""
        _check_split(split)
        columns = _check_columns(columns, self.schema)
        dataset = ds.dataset([str(f) for f in self.files], schema=self.schema, format="parquet")
        row_filter = None if split is None else pc.field("split") == split
        return dataset.to_table(columns=columns, filter=row_filter)

    def iter_batches(
        self,
        batch_size: int = 1024,
        columns: Sequence[str] | None = None,
        split: str | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream record batches of at most `batch_size` rows, in stored order.

        One row group is in memory at a time, so memory does not grow with the number of rows.
        Filtering by split can leave batches shorter than `batch_size`; empty ones are skipped.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        _check_split(split)
        columns = _check_columns(columns, self.schema)
        wanted = columns if columns is not None else list(self.schema.names)
        # The split column is needed to filter even when the caller did not ask for it.
        to_read = wanted if split is None or "split" in wanted else [*wanted, "split"]
        for path in self.files:
            # pre_buffer=False: pre-buffering fetches every requested row group of the file up
            # front (about the whole file in memory), exactly the growth streaming must avoid.
            with pq.ParquetFile(path, pre_buffer=False) as parquet:
                for batch in parquet.iter_batches(batch_size=batch_size, columns=to_read):
                    if split is not None:
                        batch = batch.filter(pc.equal(batch.column("split"), split))
                        if batch.num_rows == 0:
                            continue
                        if to_read is not wanted:
                            batch = batch.select(wanted)
                    yield batch
