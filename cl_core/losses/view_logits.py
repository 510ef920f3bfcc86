"""The similarity logits shared by the two-view losses (NT-Xent, DCL): this worker's 2B views
against the global 2WB candidates, where each row's self and positive columns sit, and which
candidates are false negatives; `ViewLogitsLoss` holds what the two losses have in common."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cl_core import distributed
from cl_core.losses.masking import false_negative_mask


@dataclass(frozen=True)
class ViewLogits:
    logits: torch.Tensor  # (2B, 2*W*B) cosine / temperature
    rows: torch.Tensor  # (2B,) 0..2B-1
    self_cols: torch.Tensor  # (2B,) column of each view itself
    positive_cols: torch.Tensor  # (2B,) column of each view's other view
    batch: int  # B, this worker's samples


def two_view_logits(z1: torch.Tensor, z2: torch.Tensor, temperature: float, gather_distributed: bool) -> ViewLogits:
    """z1, z2: (B, D) two views of the same B samples. With `gather_distributed`, the candidates
    are every worker's views (gathered with gradients); the rows are only this worker's."""
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"views must both be (B, D); got {tuple(z1.shape)} and {tuple(z2.shape)}")
    batch = z1.shape[0]
    z1 = F.normalize(z1, dim=1)
    z2 = F.normalize(z2, dim=1)
    if gather_distributed:
        all_z1 = distributed.gather_with_grad(z1)  # (W*B, D)
        all_z2 = distributed.gather_with_grad(z2)  # (W*B, D)
        offset = distributed.rank() * batch if all_z1.shape[0] != batch else 0
    else:
        all_z1, all_z2, offset = z1, z2, 0
    global_batch = all_z1.shape[0]

    candidates = torch.cat([all_z1, all_z2], dim=0)  # (2*W*B, D)
    queries = torch.cat([z1, z2], dim=0)  # (2B, D)
    logits = queries @ candidates.T / temperature  # (2B, 2*W*B)
    local = torch.arange(batch, device=z1.device) + offset  # global index of each local sample
    return ViewLogits(
        logits=logits,
        rows=torch.arange(2 * batch, device=z1.device),
        self_cols=torch.cat([local, local + global_batch]),
        positive_cols=torch.cat([local + global_batch, local]),
        batch=batch,
    )


class ViewLogitsLoss(nn.Module, ABC):
    """A loss of the view logits: `temperature`, the candidates of every worker with
    `gather_distributed=True` (each worker computes its own rows), and false negatives (views of
    another sample with the same `ids` entry and, with `mask_same_label=True`, the same `labels`
    entry) handed to `reduce`, which each loss defines."""

    def __init__(self, temperature: float, gather_distributed: bool, mask_same_label: bool) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed
        self.mask_same_label = mask_same_label

    def forward(
        self,
        z1: torch.Tensor,
        z2: torch.Tensor,
        *,
        ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z1, z2: (B, D) embeddings of the two views of the same B samples; ids, labels:
        optional (B,) integers for false-negative masking. Returns a scalar."""
        view = two_view_logits(z1, z2, self.temperature, self.gather_distributed)
        excluded = false_negative_mask(
            view.batch, ids, labels, mask_same_label=self.mask_same_label, gather=self.gather_distributed,
            device=z1.device,
        )
        # (2B, 2*W*B): both views of every masked sample
        return self.reduce(view, None if excluded is None else excluded.repeat(2, 2))

    @abstractmethod
    def reduce(self, view: ViewLogits, excluded: torch.Tensor | None) -> torch.Tensor:
        """The loss from the view logits and the (2B, 2*W*B) false negatives (None: none), which
        include each row's own and positive columns."""
