"""Contrastive objectives, selectable by name: `build_loss("ntxent", temperature=0.2)`."""

from __future__ import annotations

from torch import nn

from cl_core.losses.clip import CLIPLoss
from cl_core.losses.contrastive import PairwiseContrastiveLoss
from cl_core.losses.cosent import CoSENTLoss
from cl_core.losses.dcl import DCLLoss
from cl_core.losses.infonce import InfoNCELoss
from cl_core.losses.mnrl import MultipleNegativesRankingLoss
from cl_core.losses.moco import MoCoLoss
from cl_core.losses.ntxent import NTXentLoss
from cl_core.losses.supcon import SupConLoss
from cl_core.losses.triplet import TripletMarginLoss

LOSSES: dict[str, type[nn.Module]] = {
    "ntxent": NTXentLoss,
    "infonce": InfoNCELoss,
    "triplet": TripletMarginLoss,
    "contrastive": PairwiseContrastiveLoss,
    "supcon": SupConLoss,
    "clip": CLIPLoss,
    "mnrl": MultipleNegativesRankingLoss,
    "dcl": DCLLoss,
    "moco": MoCoLoss,
    "cosent": CoSENTLoss,
}


def build_loss(name: str, **params) -> nn.Module:
    """Instantiate the loss registered under `name` with `params`."""
    try:
        loss_class = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; available: {sorted(LOSSES)}") from None
    return loss_class(**params)


__all__ = [
    "LOSSES",
    "CLIPLoss",
    "CoSENTLoss",
    "DCLLoss",
    "InfoNCELoss",
    "MoCoLoss",
    "MultipleNegativesRankingLoss",
    "NTXentLoss",
    "PairwiseContrastiveLoss",
    "SupConLoss",
    "TripletMarginLoss",
    "build_loss",
]
