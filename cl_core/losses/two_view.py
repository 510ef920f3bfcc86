"""The objectives the image training step can use on two augmented views of a batch, behind
one call: `objective(z1, z2, labels=None) -> scalar`.

Each loss keeps its own natural signature; this adapter feeds it the two views (and the labels
of the batch, where the objective reads them), so the training step and the config need to know
only a name. Which names train this way, their options, defaults and ranges, and the module each
builds are rows of `cl_core.losses.objectives`; the in-batch forms of InfoNCE, triplet and
pairwise contrastive live in their loss files (`InBatchInfoNCELoss`, `TwoViewTripletLoss`,
`TwoViewContrastiveLoss`).

MoCo is the one image objective that is not here: it needs a momentum key encoder, i.e. a second
network, so it trains through `cl_core.training_step.momentum_train_step` with `MoCoLoss` and
`cl_core.models.momentum.MomentumEncoder` (MOMENTUM_OBJECTIVES).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cl_core.losses.objectives import OBJECTIVES, objective_names
from cl_core.modalities.image import IMAGE

TWO_VIEW_OBJECTIVES = objective_names(IMAGE.name, "two_view")
MOMENTUM_OBJECTIVES = objective_names(IMAGE.name, "momentum")


class TwoViewObjective(nn.Module):
    """`objective(z1, z2, labels=None)`: z1, z2 (B, P) the projections of the two views of B
    images, labels (B,) integer classes or None (needed only when `uses_labels`).

    `name` in TWO_VIEW_OBJECTIVES; the mappings:
    - "ntxent", "dcl": the loss on (z1, z2) as its two views.
    - "supcon": the (B, 2, P) stack of the views with the labels (without labels it is SimCLR).
    - "mnrl": anchors z1, positives z2, scale = 1 / temperature, symmetric unless
      `symmetric=False`.
    - "clip": z1 as images, z2 as texts.
    - "infonce": query z1_i, positive z2_i, negatives the other z2_j of the global batch.
    - "triplet": mining over [z1; z2], the other view as the positive (classes with
      `use_labels`); `mining` "semi_hard" (default, FaceNet's, less prone to collapse early in
      training than the hardest negative) or "batch_hard".
    - "contrastive": Hadsell et al.'s loss over the cross-view pairs, the mean of the similar
      term plus the mean of the dissimilar term; default distance cosine and margin 0.5.

    Options (`temperature` and the keyword `options`: margin, distance, mining, use_labels,
    symmetric, ...): the objectives table says which loss reads each, its default and its range;
    one given to a loss that does not read it, or out of range, is a ValueError naming it.
    `mask_same_label`: same-label samples are never negatives, which needs labels.

    Distributed (`gather_distributed=True` and an initialised process group): every loss with
    in-batch negatives compares this worker's rows with the global batch, gathered with
    gradients (labels without), and returns a value whose mean over the workers is the
    single-process loss on the concatenated batch (DDP's gradient average then optimises it
    exactly). Every rank must pass the same B.
    """

    def __init__(
        self,
        name: str,
        temperature: float,
        mask_same_label: bool = False,
        learnable_temperature: bool = False,
        gather_distributed: bool = True,
        **options: Any,
    ) -> None:
        super().__init__()
        objective = OBJECTIVES.get(name)
        form = objective.trains.get(IMAGE.name) if objective is not None else None
        if form == "momentum":
            raise ValueError(
                f"loss {name!r} needs a momentum key encoder, so it is not a two-view objective: train it with "
                "cl_core.training_step.momentum_train_step (MoCoLoss + cl_core.models.momentum.MomentumEncoder)"
            )
        if form != "two_view":
            raise ValueError(
                f"loss {name!r} does not train on two views of an image; use one of {TWO_VIEW_OBJECTIVES}, "
                f"or {MOMENTUM_OBJECTIVES} with momentum_train_step"
            )
        settled = objective.settle({
            "temperature": temperature, "mask_same_label": mask_same_label,
            "learnable_temperature": learnable_temperature, **options,
        }, IMAGE.name)
        self.name = name
        self.loss = objective.build(settled, gather_distributed, None)
        self.stacked_views = objective.stacked_views
        self.uses_labels = objective.uses_labels(settled)
        # SupCon reads labels when the batch has them; masking and label positives need them.
        self.needs_labels = bool(settled.get("mask_same_label") or settled.get("use_labels"))

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z1, z2: (B, D) projections of the two views; labels: (B,) or None."""
        views = (torch.stack([z1, z2], dim=1),) if self.stacked_views else (z1, z2)  # (B, 2, D) or 2 x (B, D)
        if not self.uses_labels:
            return self.loss(*views)
        if labels is None and self.needs_labels:
            raise ValueError(f"{self.name} with mask_same_label / use_labels needs labels in forward(..., labels=...)")
        return self.loss(*views, labels=labels)
