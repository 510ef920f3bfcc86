"""The objectives the image training step can use on two augmented views of a batch, behind
one call: `objective(z1, z2, labels=None) -> scalar`.

Each loss keeps its own natural signature; this adapter maps the two views (and the labels of
the batch, where the objective uses them) onto it, so the training step and the config need
to know only a name.
"""

from __future__ import annotations

import torch
from torch import nn

from cl_core.losses import build_loss

TWO_VIEW_OBJECTIVES = ("ntxent", "dcl", "supcon", "mnrl", "clip")


class TwoViewObjective(nn.Module):
    """`name` in TWO_VIEW_OBJECTIVES; `temperature` is the softmax temperature (MNRL's scale is
    its inverse); `mask_same_label` keeps same-label samples out of the negatives (NT-Xent, DCL,
    MNRL); SupCon always uses labels when the batch has them (without them it is SimCLR)."""

    def __init__(self, name: str, temperature: float, mask_same_label: bool = False,
                 learnable_temperature: bool = False, gather_distributed: bool = True) -> None:
        super().__init__()
        if name not in TWO_VIEW_OBJECTIVES:
            raise ValueError(f"loss {name!r} does not train on two views of an image; use one of {TWO_VIEW_OBJECTIVES}")
        if mask_same_label and name not in ("ntxent", "dcl", "mnrl"):
            raise ValueError(f"mask_same_label applies to ntxent, dcl and mnrl, not {name!r}")
        self.name = name
        self.mask_same_label = mask_same_label
        if name == "mnrl":
            params = {"scale": 1.0 / temperature, "symmetric": True, "mask_same_label": mask_same_label}
        elif name == "clip":
            params = {"temperature": temperature, "learnable_temperature": learnable_temperature}
        elif name == "supcon":
            params = {"temperature": temperature}
        else:
            params = {"temperature": temperature, "mask_same_label": mask_same_label}
        self.loss = build_loss(name, gather_distributed=gather_distributed, **params)

    @property
    def uses_labels(self) -> bool:
        return self.name == "supcon" or self.mask_same_label

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z1, z2: (B, D) projections of the two views; labels: (B,) or None."""
        if self.name == "supcon":
            return self.loss(torch.stack([z1, z2], dim=1), labels)  # (B, 2, D)
        if self.name == "clip":
            return self.loss(z1, z2)
        if self.mask_same_label:
            return self.loss(z1, z2, labels=labels)
        return self.loss(z1, z2)
