"""Ingest flow: a raw source -> a versioned Parquet dataset in the workspace."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from cl_core.config import DataConfig, IngestConfig, SourceSection
from cl_core.datasets import DatasetStore
from cl_core.modalities import Modality, modality
from cl_core.modalities.image import IMAGE
from flows.prefect_edge import progress
from flows.workspace import Workspace

# What a call that leaves a setting out gets: the data and ingest sections' own defaults.
_DATA, _INGEST = DataConfig(), IngestConfig()


def source_specs(data: DataConfig) -> dict[str, Any]:
    """The `ingest_flow` arguments that say how to read `data.source`: the validated section of
    its modality (`DataConfig.source_section`: `data.text`, `data.interactions`, or None for
    images), the tar member size limit, and the share of train carved into val where the source
    names no val split."""
    return {"source_spec": data.source_section(), "max_member_bytes": data.max_member_bytes,
            "val_fraction": data.val_fraction}


def _modality(source_spec: SourceSection | None) -> Modality:
    """The record of the data the source holds: the one its section reads (a source without a
    section holds images)."""
    return modality(source_spec.modality if source_spec is not None else IMAGE.name)


def _check_engine(engine: str, limit: int | None, record: Modality) -> None:
    """What the config validation says (`PipelineConfig`), for callers that pass plain arguments."""
    if engine not in ("local", "ray"):
        raise ValueError(f"ingest.engine must be 'local' or 'ray', got {engine!r}")
    if engine == "ray" and record.local_ingest_only:
        raise ValueError(f"ingest.engine 'ray' ingests images and text; {record.noun} need ingest.engine local")
    if engine == "ray" and limit is not None:
        raise ValueError("data.limit (--limit) needs ingest.engine local: the ray engine reads every file")


@task(name="ingest-source")
def ingest_source(source: str, name: str, datasets_root: str, limit: int | None, max_bad_fraction: float,
                  source_spec: SourceSection | None, engine: str, ray_address: str | None,
                  max_member_bytes: int, val_fraction: float) -> dict[str, Any]:
    record = _modality(source_spec)
    _check_engine(engine, limit, record)
    logger = get_run_logger()

    def records_read(done: int) -> None:
        logger.info("ingest %s: %d records read", name, done)
        progress.report("ingest", done, limit, "records")

    progress.report("ingest", 0, limit, "records", f"reading {source}")
    store = DatasetStore(Path(datasets_root))
    if engine == "ray":
        from flows.ray_edge.ingest import ingest_with_ray

        # _check_engine let only images (no section) and text through to Ray.
        result = ingest_with_ray(store, source, name, text_spec=source_spec, max_bad_fraction=max_bad_fraction,
                                 ray_address=ray_address, max_member_bytes=max_member_bytes,
                                 val_fraction=val_fraction)
    else:
        ingest = record.part("ingest")
        result = ingest(store, source, name, source_spec, limit=limit, max_bad_fraction=max_bad_fraction,
                        progress=records_read, max_member_bytes=max_member_bytes, val_fraction=val_fraction)
    summary = {key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(result).items()}
    state = "new version" if result.created else "unchanged (existing version)"
    logger.info(
        "dataset %s@%s: %d rows %s, %d quarantined, %s",
        name, result.version, result.rows, result.splits, result.quarantined, state,
    )
    if result.details:
        logger.info("dataset %s@%s: %s", name, result.version, result.details)
    if result.quarantined:
        logger.warning("%d bad records quarantined in %s", result.quarantined, result.quarantine_path)
    progress.finish("ingest", f"{name}@{result.version}: {result.rows} rows, {result.quarantined} quarantined, {state}")
    return summary


@flow(name="ingest")
def ingest_flow(source: str, name: str, workspace: str, limit: int | None = _DATA.limit,
                max_bad_fraction: float = _DATA.max_bad_fraction,
                source_spec: SourceSection | None = None, engine: str = _INGEST.engine, ray_address: str | None = None,
                max_member_bytes: int = _DATA.max_member_bytes,
                val_fraction: float = _DATA.val_fraction) -> dict[str, Any]:
    """Read `source` into dataset `name`: images from 'digits', a folder of tar shards or an
    image folder; with `source_spec` the validated section of another modality (`SourceSection`):
    `data.text` (a `TextSourceSpec`), sentence pairs from a TSV/CSV/JSONL/Parquet file or a folder
    of them; `data.interactions`, user-item interactions and their side tables, or 'ml-100k'.

    `engine` "ray" (`ingest.engine`) reads and checks on Ray Data across the cluster at
    `ray_address` (else $RAY_ADDRESS, else a local Ray): images and text only, without `limit`;
    the same version as "local". `max_member_bytes` (`data.max_member_bytes`): a tar shard's
    member above it is quarantined unread, with its name and size. `val_fraction`
    (`data.val_fraction`): a source that names train and test but no val split gets this share of
    its train rows as val, chosen by a hash of the id (0: none)."""
    _check_engine(engine, limit, _modality(source_spec))
    ws = Workspace(Path(workspace)).create()
    return ingest_source(source, name, str(ws.datasets), limit, max_bad_fraction, source_spec, engine, ray_address,
                         max_member_bytes, val_fraction)
