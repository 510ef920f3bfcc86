"""The `ray` ingest engine: images and text ingested by Ray Data tasks across the cluster.

    read      one task per unit of the source (a tar shard, a class folder, a text file), with
              the same readers as the local engine, so the records are exactly its records
    check     `map_batches`: decode each image / check each row (`buckets.check_record`)
    group     `groupby(bucket).map_groups`: per bucket, drop duplicate ids as the local engine
              does (first good one in source order), sort by id, hash, and write the bucket's
              Parquet parts into the version's staging folder (`buckets.finish_bucket`)

The driver only receives one small `BucketResult` per bucket (counts, digest, file names, bad
records), never rows, so its memory does not grow with the dataset; `DatasetStore.ingest_buckets`
publishes the version from them with the same id the local engine computes. The store's folder
must be reachable at the same path from every node (a shared filesystem), since each bucket is
written where it was grouped.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from cl_core.datasets import DatasetStore, IngestError, IngestResult, TextSourceSpec
from cl_core.datasets.buckets import CheckedRecord, check_record, finish_bucket, record_bucket
from cl_core.datasets.image_rows import ImageRows
from cl_core.datasets.sources import open_source
from cl_core.datasets.sources.text import open_text_source
from cl_core.datasets.sources.text.rows import TextRows
from cl_core.datasets.sources.webdataset import MAX_MEMBER_BYTES
from cl_core.datasets.version_id import BUCKETS
from cl_core.defaults import VAL_FRACTION
from flows.ray_edge.cluster import ensure_ray

READ_BATCH_ROWS = 1024  # records per block a read task yields


def _node() -> str:
    return ray.get_runtime_context().get_node_id()


def _read_unit(index: int, unit: Callable[[], Iterator[Any]]) -> Iterator[pa.Table]:
    """The records of one unit as tables of (bucket, unit, position, node, record): the record
    pickled whole, so that the checks and the bucket see the reader's own objects."""
    node = _node()
    columns: dict[str, list] = {"bucket": [], "position": [], "record": []}

    def block() -> pa.Table:
        size = len(columns["record"])
        table = pa.table({
            "bucket": pa.array(columns["bucket"], pa.int32()),
            "unit": pa.array([index] * size, pa.int32()),
            "position": pa.array(columns["position"], pa.int64()),
            "node": pa.array([node] * size, pa.string()),
            "record": pa.array(columns["record"], pa.binary()),
        })
        for values in columns.values():
            values.clear()
        return table

    for position, record in enumerate(unit()):
        columns["bucket"].append(record_bucket(record))
        columns["position"].append(position)
        columns["record"].append(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))
        if len(columns["record"]) >= READ_BATCH_ROWS:
            yield block()
    if columns["record"]:
        yield block()


class SourceUnits(Datasource):
    """A source's units (`Source.units`, `TextSource.units`) as Ray Data read tasks, one each."""

    def __init__(self, units: list[Callable[[], Iterator[Any]]]) -> None:
        super().__init__()
        self._units = units

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: Any = None) -> list[ReadTask]:
        # One task per unit whatever `parallelism` asks: a unit is read in one pass, in order.
        return [
            ReadTask(lambda index=index, unit=unit: _read_unit(index, unit),
                     BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None))
            for index, unit in enumerate(self._units)
        ]


RowsFactory = Callable[[], ImageRows | TextRows]


def _check_batch(batch: pa.Table, make_rows: RowsFactory) -> pa.Table:
    """Add what `check_record` finds for each record (the image decoded): its problem, split and
    what `keep` needs. The pickled record itself passes through untouched."""
    rows = make_rows()
    problems, splits, checks = [], [], []
    for data, unit, position in zip(batch.column("record").to_pylist(), batch.column("unit").to_pylist(),
                                    batch.column("position").to_pylist(), strict=True):
        checked = check_record(rows, pickle.loads(data), (unit, position))
        problems.append(checked.problem)
        splits.append(checked.split)
        checks.append(None if checked.checked is None else pickle.dumps(checked.checked))
    return (batch.append_column("problem", pa.array(problems, pa.string()))
            .append_column("split", pa.array(splits, pa.string()))
            .append_column("checked", pa.array(checks, pa.binary())))


def _checked_records(group: pa.Table) -> list[CheckedRecord]:
    columns = [group.column(c).to_pylist() for c in ("unit", "position", "record", "problem", "checked", "split")]
    return [
        CheckedRecord((unit, position), pickle.loads(record), problem,
                      None if checked is None else pickle.loads(checked), split)
        for unit, position, record, problem, checked, split in zip(*columns, strict=True)
    ]


def _finish_group(group: pa.Table, make_rows: RowsFactory, staging: str, description: str,
                  rows_per_file: int, row_group_rows: int) -> pa.Table:
    """One bucket's records -> its Parquet parts in `staging`, and its pickled `BucketResult`.

    A task may be handed several groups in turn, so each gets fresh rows from `make_rows`.
    """
    bucket = group.column("bucket")[0].as_py()
    result = finish_bucket(make_rows(), bucket, _checked_records(group), Path(staging), description=description,
                           rows_per_file=rows_per_file, row_group_rows=row_group_rows)
    result.nodes = set(group.column("node").unique().to_pylist()) | {_node()}
    return pa.table({"result": pa.array([pickle.dumps(result)], pa.binary())})


def _partitions() -> int:
    """How many blocks the rows are hash-shuffled into before the buckets are finished: two per
    CPU of the cluster, at most one per bucket (Ray's default, 200, makes mostly empty tasks)."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(2, min(BUCKETS, 2 * cpus))


def _unwrap(error: BaseException) -> BaseException | None:
    """The IngestError or OSError a task raised, from inside Ray's wrappers (RayTaskError and
    the like carry it as `.cause`, Ray Data chains them), or None when there is none."""
    seen, visited = error, set()
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        inner = getattr(seen, "cause", None)
        if isinstance(inner, BaseException):
            seen = inner
            continue
        if isinstance(seen, (IngestError, OSError)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def ingest_with_ray(
    store: DatasetStore,
    source: str | Path,
    name: str,
    *,
    text_spec: TextSourceSpec | None = None,
    max_bad_fraction: float = 0.05,
    ray_address: str | None = None,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    val_fraction: float = VAL_FRACTION,
) -> IngestResult:
    """Ingest images (or with `text_spec` sentence pairs) from `source` on Ray Data; the same
    version as `store.ingest` / `store.ingest_text` would publish, checks and quarantine
    included, and the same val rows carved from train where the source names no val
    (`val_fraction`: the read tasks call the source's wrapped units). Joins `ray_address` (or
    $RAY_ADDRESS), else starts a local Ray.

    Raises:
        IngestError: as the local engine; also when a read task fails (a damaged .gz text file),
            with Ray's wrapping removed. Nothing is published then.
    """
    started = time.perf_counter()
    if text_spec is None:
        opened = open_source(str(source), max_member_bytes=max_member_bytes, val_fraction=val_fraction)
        make_rows: RowsFactory = partial(ImageRows, opened.class_names)
    else:
        opened = open_text_source(source, text_spec, val_fraction=val_fraction)
        make_rows = TextRows
    ensure_ray(ray_address)

    def write(staging: Path) -> list:
        dataset = (
            ray.data.read_datasource(SourceUnits(opened.units))
            .map_batches(_check_batch, fn_kwargs={"make_rows": make_rows}, batch_format="pyarrow")
            .groupby("bucket", num_partitions=_partitions())
            .map_groups(_finish_group, batch_format="pyarrow", fn_kwargs={
                "make_rows": make_rows, "staging": str(staging), "description": opened.description,
                "rows_per_file": store.rows_per_file, "row_group_rows": store.row_group_rows,
            })
        )
        try:
            return [pickle.loads(row["result"]) for row in dataset.iter_rows()]
        except Exception as error:  # noqa: BLE001 - Ray wraps what the tasks raised
            cause = _unwrap(error)
            if cause is None:
                raise
            raise IngestError(f"ingest of {opened.description} on Ray failed: {cause}") from error

    return store.ingest_buckets(make_rows(), name, description=opened.description,
                                max_bad_fraction=max_bad_fraction, write=write, started=started)
