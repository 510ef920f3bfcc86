"""Contrastive objectives, selectable by name: `build_loss("ntxent", temperature=0.2)`."""

from __future__ import annotations

from torch import nn

from cl_core.losses.ntxent import NTXentLoss

LOSSES: dict[str, type[nn.Module]] = {
    "ntxent": NTXentLoss,
}


def build_loss(name: str, **params) -> nn.Module:
    """Instantiate the loss registered under `name` with `params`."""
    try:
        loss_class = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; available: {sorted(LOSSES)}") from None
    return loss_class(**params)


__all__ = ["LOSSES", "NTXentLoss", "build_loss"]
