"""Collectives that are safe to call with or without an initialised process group.

Everything here falls back to the single-process behaviour when `torch.distributed` is not
initialised, so losses can be unit-tested without workers (the OpenCLIP / lightly pattern).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sends each rank the summed gradient of its own slice.

    Every rank's loss depends on every rank's embeddings (they are its negatives), so the
    gradient of a rank's local rows is the sum over all ranks' losses: all_reduce(SUM) then
    slice. Combined with DDP's gradient averaging this yields exactly the gradient of the mean
    loss over the global batch.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.batch = tensor.shape[0]
        gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        return torch.cat(gathered, dim=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        grad = grad_output.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.batch
        return grad[start : start + ctx.batch]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` (B, ...) from all ranks into (world*B, ...), differentiably.

    All ranks must pass the same B. Returns `tensor` unchanged in a single process.
    """
    if not is_distributed() or dist.get_world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


def average_across_workers(grad: torch.Tensor) -> torch.Tensor:
    """Gradient hook for parameters outside DDP (e.g. a loss's learnable temperature): the mean
    of the gradient over all ranks, so every worker takes the same step."""
    if not is_distributed() or dist.get_world_size() == 1:
        return grad
    averaged = grad.clone()
    dist.all_reduce(averaged, op=dist.ReduceOp.SUM)
    return averaged / dist.get_world_size()
