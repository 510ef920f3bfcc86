"""A model is never scored on an interactions version older than the one it trained on.

Interactions are split by time: what a version holds out (val and test) is what happened last.
A later version of the same data moves what an earlier one held out into its training rows:

- under a time cutoff, the interactions between the old and the new cutoffs are the old
  version's val/test and the new version's train;
- under leave-two-out (`leave_last_out`) the same happens per user: once a user has new
  interactions, the val and test items the older version held out for it are train in the
  newer one. So the rule applies to both methods.

A model trained on the newer version and scored on the older one has trained on the very rows
it is scored on: an optimistic number and, at the promotion gate, a rigged comparison.

Versions are ordered by when they were published: the manifest's `created_at`, ties (the same
second) by the store's order (`DatasetStore.versions`, oldest first). Under time cutoffs the
cutoffs are compared too, whatever the order: a version whose held-out part starts before the
training version's (val_from, else test_from) also holds out rows the model trained on.

Images and text are split by id, not by time: a newer version does not move an older one's
held-out rows into train, so they are not checked. Neither is a version of another dataset name
(a model scored on other data has no order to keep).
"""

from __future__ import annotations

from typing import Any

from cl_core.datasets import DatasetStore, DatasetVersion
from cl_core.modalities.interactions import INTERACTIONS


class OlderVersionError(ValueError):
    """A model would be scored on a dataset version that holds out rows it trained on; the
    message names both versions."""


def _held_out_from(rule: dict[str, Any]) -> float | None:
    """Where a time-cutoff version's held-out part starts (val_from, else test_from); None for
    another split method."""
    if rule.get("method") != "time_cutoff":
        return None
    return rule["val_from"] if rule.get("val_from") is not None else rule.get("test_from")


def _published(store: DatasetStore, version: DatasetVersion) -> tuple[str, int]:
    versions = store.versions(version.name)
    place = versions.index(version.version) if version.version in versions else len(versions)
    return version.created_at, place


def check_version_order(store: DatasetStore, trained_name: str, trained_version: str, scored: DatasetVersion) -> None:
    """Raise `OlderVersionError` when a model trained on `trained_name@trained_version` may not be
    scored on `scored` (see the module docstring); return None when it may.

    Args:
        store: the store holding both versions.
        trained_name, trained_version: the dataset version the model trained on (the training
            run's and the model version's tag "dataset.version", "dataset.name").
        scored: the version to score on.

    Raises:
        OlderVersionError: (a ValueError) `scored` was published before the training version, or
            its held-out part starts before the model's training rows end (time cutoffs); or the
            training version is not in the store, so the order cannot be checked.
    """
    if scored.kind != INTERACTIONS.name or trained_name != scored.name or trained_version == scored.version:
        return
    trained_ref, scored_ref = f"{trained_name}@{trained_version}", f"{scored.name}@{scored.version}"
    if trained_version not in store.versions(trained_name):
        raise OlderVersionError(
            f"cannot check that {scored_ref} is not older than {trained_ref}, the version the model trained on: "
            f"{trained_ref} is not in the store {store.root}")
    trained = store.resolve(trained_name, trained_version)
    trained_at, scored_at = _published(store, trained), _published(store, scored)
    if scored_at < trained_at:
        raise OlderVersionError(
            f"the model trained on {trained_ref} (published {trained_at[0]}) cannot be scored on {scored_ref} "
            f"(published {scored_at[0]}, older): interactions are split by time, so {trained_ref}'s training rows "
            f"hold interactions that {scored_ref} holds out as val or test; score it on {trained_version} or a later version")
    trained_from = _held_out_from(trained.split_rule)
    scored_from = _held_out_from(scored.split_rule)
    if trained_from is not None and scored_from is not None and scored_from < trained_from:
        raise OlderVersionError(
            f"the model trained on {trained_ref} (its train split: timestamps before {trained_from:g}) cannot be "
            f"scored on {scored_ref}, which holds out interactions from {scored_from:g}: the model trained on "
            f"{scored_ref}'s val or test rows between {scored_from:g} and {trained_from:g}")
