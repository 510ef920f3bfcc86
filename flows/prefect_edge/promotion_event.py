"""The Prefect event evaluation emits when `champion` moves, which the `reembed-on-promotion`
deployment's trigger reacts to.

`emit_event` logs and swallows delivery errors, and the temporary server forgets its events when
the process ends, so a promotion event can be lost: the scheduled `refresh` resolves the
champion itself and backfills when CURRENT's model version differs.
"""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

PROMOTED = "clpipe.model.promoted"
RESOURCE_PREFIX = "clpipe.model."


def model_resource_id(model_name: str) -> str:
    return f"{RESOURCE_PREFIX}{model_name}"


def emit_promoted(model_name: str, model_version: str, previous_version: str | None, dataset_name: str,
                  dataset_version: str) -> dict[str, Any] | None:
    """Announce that `model_version` is now the champion; returns the payload sent, or None when
    Prefect could not take the event."""
    payload = {"model_name": model_name, "model_version": model_version, "previous_version": previous_version,
               "dataset_name": dataset_name, "dataset_version": dataset_version}
    event = emit_event(PROMOTED, resource={"prefect.resource.id": model_resource_id(model_name),
                                           "prefect.resource.name": model_name}, payload=payload)
    return payload if event is not None else None
