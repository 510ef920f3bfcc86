"""The whole DAG: ingest -> train -> evaluate -> reembed.

The run ends with reembed's decision for the table its champion follows, not a full export: the
table is left as it is when the champion and the dataset version did not change (`up_to_date`),
embeds only new and changed rows for a new dataset version (`incremental`), and embeds every row
when this run's model was promoted (`backfill`); `superseded` (the champion or the dataset's
LATEST moved on while it waited for the table's lock) writes nothing and is reported, not an
error. `clpipe export` stays the explicit full rewrite.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from cl_core.config import PipelineConfig, load_config
from flows.evaluate_flow import evaluate_flow
from flows.ingest_flow import ingest_flow, source_specs
from flows.mlflow_edge.registry import CHAMPION
from flows.reembed_flow import reembed_flow
from flows.train_flow import train_flow


@flow(name="clpipe-run")
def pipeline_flow(
    config: PipelineConfig, workspace: str, ray_address: str | None = None, config_file: str | None = None
) -> dict[str, Any]:
    """`config` is the validated config; each step gets it, or its section, as it is."""
    cfg, data = config, config.data
    ingested = ingest_flow(data.source, data.name, workspace, limit=data.limit, max_bad_fraction=data.max_bad_fraction,
                           **source_specs(data), engine=cfg.ingest.engine, ray_address=ray_address)
    # Train on exactly the version this run ingested, not whatever is latest by then.
    pinned = cfg.model_copy(update={"data": data.model_copy(update={"version": ingested["version"]})})
    trained = train_flow(pinned, workspace, ray_address, config_file)
    evaluated = evaluate_flow(
        f"{trained['model_name']}/{trained['model_version']}", data.name, workspace, ingested["version"],
        cfg.eval, cfg.views, cfg.registry,
    )
    # The table follows the champion (whichever version that is now) and the dataset's LATEST.
    reembedded = reembed_flow(f"{trained['model_name']}@{CHAMPION}", data.name, workspace, cfg.export, ray_address)
    return {"ingest": ingested, "train": trained, "evaluate": evaluated, "reembed": reembedded}


@flow(name="clpipe-run-config")
def pipeline_from_config(workspace: str, config_file: str | None = None, ray_address: str | None = None) -> dict[str, Any]:
    """`clpipe run --config FILE` as a deployment runs it: plain-string parameters (a config file
    path, read when the run starts, so edits to it apply to the next scheduled run)."""
    return pipeline_flow(load_config(config_file), workspace, ray_address, config_file)
