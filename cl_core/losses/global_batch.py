"""The global batch of two views that the in-batch forms of InfoNCE, triplet and pairwise
contrastive share: this worker's rows, every worker's rows (gathered with gradients), the keys
that say which rows are the same sample or the same class, and counts summed over workers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from cl_core import distributed
from cl_core.losses.masking import gather_no_grad


@dataclass(frozen=True)
class TwoViewBatch:
    """z1, z2 of this worker (B, D) and of the global batch (W*B, D); `sample` / `label` are the
    local (B,) keys and `all_sample` / `all_label` the global (W*B,) ones: the sample index, and
    the class labels (the sample index again when no labels are given)."""

    all_z1: torch.Tensor
    all_z2: torch.Tensor
    offset: int  # global row of this worker's first sample
    sample: torch.Tensor
    all_sample: torch.Tensor
    label: torch.Tensor
    all_label: torch.Tensor

    @property
    def batch(self) -> int:
        return self.sample.shape[0]

    @property
    def global_batch(self) -> int:
        return self.all_sample.shape[0]

    @property
    def workers(self) -> int:
        return self.global_batch // self.batch

    def global_count(self, count: torch.Tensor) -> torch.Tensor:
        """Sum of integer counts over the workers (one all_reduce, no host sync); unchanged in one
        process."""
        if self.global_batch != self.batch:
            count = count.clone()
            dist.all_reduce(count)
        return count


def check_views(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor | None) -> None:
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"views must both be (B, D); got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if labels is not None:
        if labels.shape != z1.shape[:1]:
            raise ValueError(f"labels must have shape ({z1.shape[0]},), got {tuple(labels.shape)}")
        if labels.is_floating_point() or labels.is_complex():
            raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")


def batch_keys(
    batch: int, offset: int, global_batch: int, labels: torch.Tensor | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local (B,) and global (W*B,) integer keys: the labels (gathered) or the sample index."""
    if labels is None:
        everyone = torch.arange(global_batch, device=device)
        return everyone[offset : offset + batch], everyone
    labels = labels.to(device=device, dtype=torch.long)
    return labels, (gather_no_grad(labels) if global_batch != batch else labels)


def two_view_batch(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor | None, gather: bool) -> TwoViewBatch:
    """Checks the views (B, D) and labels (B,) or None, and gathers the global batch (one
    all_gather, with gradients) when `gather` and a process group of several workers."""
    check_views(z1, z2, labels)
    batch = z1.shape[0]
    if gather and distributed.world_size() > 1:
        both = distributed.gather_with_grad(torch.stack([z1, z2], dim=1))  # (W*B, 2, D)
        all_z1, all_z2, offset = both[:, 0], both[:, 1], distributed.rank() * batch
    else:
        all_z1, all_z2, offset = z1, z2, 0
    global_batch = all_z1.shape[0]
    sample, all_sample = batch_keys(batch, offset, global_batch, None, z1.device)
    label, all_label = batch_keys(batch, offset, global_batch, labels, z1.device)
    return TwoViewBatch(all_z1, all_z2, offset, sample, all_sample, label, all_label)
