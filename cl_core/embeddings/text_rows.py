"""What a text version contributes to its embedding table: one row per sentence, "<id>/1" for a
pair's text1 and "<id>/2" for its text2 (`cl_core.embeddings.schema.sentence_rows`), the
sentence being the model's input. The rows interface of `cl_core.embeddings.image_rows`."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from cl_core.datasets import DatasetVersion
from cl_core.embeddings.schema import TEXT_KEYS, sentence_rows

KEYS = TEXT_KEYS
_COLUMNS = ["id", "split", "text1", "text2"]


def table_rows(dataset: DatasetVersion) -> int:
    """One table row per sentence: each pair's text1 plus each text2."""
    return dataset.num_rows() + dataset.pairs


def key_batches(dataset: DatasetVersion, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The key columns of every sentence (the text is one of them)."""
    yield from sentence_rows(dataset.iter_batches(batch_size=batch_size, columns=_COLUMNS))


def input_batches(dataset: DatasetVersion, batch_size: int, only_ids: pa.Array | None = None) -> Iterator[pa.RecordBatch]:
    """Every sentence row, or only those whose id is in `only_ids`."""
    for batch in dataset.iter_batches(batch_size=batch_size, columns=_COLUMNS):
        for rows in parts_rows(batch, only_ids).to_batches():
            if rows.num_rows:
                yield rows


def part_columns(dataset: DatasetVersion) -> list[str]:
    """The part columns `parts_rows` needs."""
    return list(_COLUMNS)


def part_ids(only_ids: pa.Array) -> pa.Array:
    """The pairs that hold the sentences `only_ids`: "<id>/1" and "<id>/2" are in pair "<id>"."""
    return pc.unique(pc.replace_substring_regex(only_ids, pattern="/[12]$", replacement=""))


def parts_rows(batch: pa.RecordBatch | pa.Table, only_ids: pa.Array | None = None) -> pa.Table:
    """One row per sentence of the pairs in `batch`."""
    pairs = batch.to_batches() if isinstance(batch, pa.Table) else [batch]
    rows = pa.Table.from_batches(list(sentence_rows(pairs)), schema=KEYS)
    if only_ids is not None:
        rows = rows.filter(pc.is_in(rows.column("id"), value_set=only_ids))
    return rows
