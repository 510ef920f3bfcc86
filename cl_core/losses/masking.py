"""False-negative masking shared by the in-batch-negative losses (NT-Xent, DCL, MNRL).

In-batch negatives assume every other sample is a different instance. Two samples with the same
id (a duplicate row, or the same image drawn twice into one batch) contradict that: pushing them
apart is pushing a sample away from itself. With labels, samples of the same class are also
false negatives for a supervised objective, which the user may ask to exclude. This module builds
the boolean (local, global) mask of candidates that a loss must drop from its denominator.

Ids and labels carry no gradient, so across workers they are gathered with a plain all_gather:
a collective that runs only when the caller passes ids / labels and gathering is enabled, so
every rank must pass the same keyword arguments.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from cl_core import distributed


def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` (B, ...) from all ranks into (W*B, ...), without gradient.

    All ranks must pass the same B. Returns `tensor` unchanged in a single process.
    """
    if distributed.world_size() == 1:
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(distributed.world_size())]
    dist.all_gather(gathered, tensor.detach().contiguous())
    return torch.cat(gathered, dim=0)


def _check_keys(name: str, keys: torch.Tensor, batch: int) -> None:
    if keys.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(keys.shape)}")
    if keys.is_floating_point() or keys.is_complex():
        raise ValueError(f"{name} must be an integer tensor, got {keys.dtype}")


def false_negative_mask(
    batch: int,
    ids: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    *,
    mask_same_label: bool = False,
    gather: bool = False,
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """Boolean mask (B, G) of global candidates that must not be negatives of each local sample.

    Args:
        batch: B, the number of local samples.
        ids: (B,) integer sample ids; equal ids mark the same underlying sample.
        labels: (B,) integer class labels; used only when `mask_same_label` is True.
        mask_same_label: also exclude candidates that share the anchor's label.
        gather: the loss gathers its candidates across ranks, so gather ids / labels too
            (G = W*B); otherwise G = B.
        device: where the mask is built (the embeddings' device, which NCCL also needs).

    Returns None when there is nothing to mask. The mask includes each sample's own column
    (a sample shares its own id): callers re-enable the positive they keep.
    """
    if mask_same_label and labels is None:
        raise ValueError("mask_same_label=True needs labels in forward(..., labels=...)")
    keys = []
    if ids is not None:
        _check_keys("ids", ids, batch)
        keys.append(ids)
    if mask_same_label:
        _check_keys("labels", labels, batch)
        keys.append(labels)
    if not keys:
        return None
    mask = None
    for local in keys:
        local = local.to(device=device, dtype=torch.long)  # gloo cannot all_gather bool
        candidates = gather_no_grad(local) if gather else local  # (G,)
        same = local[:, None] == candidates[None, :]  # (B, G)
        mask = same if mask is None else mask | same
    return mask
