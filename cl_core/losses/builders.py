"""The losses by name: `build_loss("ntxent", temperature=0.2)` for a loss with its own parameters,
`build_objective(loss_config, "image")` for the training loss module of a configured objective.
Both read the table in `cl_core.losses.objectives`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from cl_core.losses.objectives import OBJECTIVES, get_objective
from cl_core.losses.two_view import TwoViewObjective

LOSSES: dict[str, type[nn.Module]] = {
    objective.name: objective.loss for objective in OBJECTIVES.values() if objective.loss is not None
}


def build_loss(name: str, **params) -> nn.Module:
    """Instantiate the loss registered under `name` with `params`."""
    try:
        loss_class = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; available: {sorted(LOSSES)}") from None
    return loss_class(**params)


def build_objective(
    loss: Mapping[str, Any] | Iterable[tuple[str, Any]],
    modality: str,
    *,
    proj_dim: int | None = None,
    gather_distributed: bool = True,
) -> nn.Module:
    """The module that trains `modality` data with the objective `loss` names: a `LossConfig`
    (or a mapping of its fields: name and options). A two-view image objective gives a
    `TwoViewObjective`; MoCo its `MoCoLoss` over `proj_dim`-dimensional keys; text objectives
    the loss their batches feed (`cl_core.text_training.text_loss`). ValueError, naming the
    option, for an objective that does not train `modality` or an option it does not read."""
    fields = dict(loss)
    objective = get_objective(fields.pop("name"))
    if objective.form(modality) == "two_view":
        return TwoViewObjective(objective.name, gather_distributed=gather_distributed, **fields)
    return objective.build(objective.settle(fields, modality), gather_distributed, proj_dim)
