"""Refresh flow: ingest a source again (new files give a new dataset version, none give the same
one), then bring the model's embedding table up to date with it. This is what the `refresh`
schedule runs.

The model is resolved through its alias (default `champion`) on every run, so a promotion whose
event was lost is still caught here: reembed sees CURRENT's model version differ and backfills.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from cl_core.config import load_config
from flows.ingest_flow import ingest_flow, source_specs
from flows.reembed_flow import default_champion, reembed_flow


@flow(name="refresh")
def refresh_flow(workspace: str, config_file: str | None = None, source: str | None = None, name: str | None = None,
                 model: str | None = None) -> dict[str, Any]:
    """Plain-string parameters, so a deployment can carry them. `source` and `name` default to the
    config's data.source and data.name; `model` (NAME[@ALIAS] or NAME/VERSION) to the config's
    model name (registry.model_name, else "<dataset>-<loss>") at alias champion."""
    cfg = load_config(config_file, {"data.source": source, "data.name": name})
    data = cfg.data
    ingested = ingest_flow(data.source, data.name, workspace, limit=data.limit, max_bad_fraction=data.max_bad_fraction,
                           **source_specs(data), engine=cfg.ingest.engine)
    reembedded = reembed_flow(default_champion(model or cfg.model_name), data.name, workspace, cfg.export)
    return {"ingest": ingested, "reembed": reembedded}
