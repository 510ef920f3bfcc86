"""The similarity logits shared by the two-view losses (NT-Xent, DCL): this worker's 2B views
against the global 2WB candidates, and where each row's self and positive columns sit."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cl_core import distributed


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
