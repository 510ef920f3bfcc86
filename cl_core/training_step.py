"""One optimisation step of contrastive training, as a plain function a test can call:
`train_step` for the two-view objectives (`cl_core.losses.two_view`), `momentum_train_step` for
MoCo (a momentum key encoder and a queue)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cl_core.grad_cache import chunked_backward, split_rows
from cl_core.losses.moco import MoCoLoss
from cl_core.models.momentum import MomentumEncoder


def train_step(
    model: nn.Module,
    views: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    images: torch.Tensor,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    autocast_dtype: torch.dtype | None = None,
    labels: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> dict[str, float]:
    """Augment `images` (B, C, H, W) into two views, embed both in one forward pass, apply the
    loss (with the batch's `labels` (B,) when given), step the optimizer (and scheduler).
    With `chunk_size`, the encoder runs on at most that many view images at a time and the loss
    still reads all 2B embeddings (`chunked_backward`). Returns {"loss", "lr"}."""
    model.train()
    view1, view2 = views(images)
    batch = view1.shape[0]
    # One forward over both views keeps BatchNorm statistics shared, as in SimCLR.
    both = torch.cat([view1, view2], dim=0)  # (2B, C, H, W)

    def loss_of(projections: torch.Tensor) -> torch.Tensor:  # (2B, P) float32
        z1, z2 = projections.split(batch, dim=0)
        return loss_fn(z1, z2) if labels is None else loss_fn(z1, z2, labels=labels)

    if chunk_size is not None:
        optimizer.zero_grad(set_to_none=True)
        loss = chunked_backward(model, split_rows(both, chunk_size), loss_of, autocast_dtype)
        return apply_step(loss, optimizer, scheduler)
    with torch.autocast(both.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        projections = model(both)  # (2B, P)
    return optimizer_step(loss_of(projections.float()), optimizer, scheduler)


def optimizer_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    after_step: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Backward `loss`, step the optimizer, run `after_step` (e.g. an EMA update), then the
    scheduler. Returns {"loss", "lr"} with the learning rate the step used."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    return apply_step(loss, optimizer, scheduler, after_step)


def apply_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    after_step: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Step the optimizer on the gradients already in `.grad` (`loss` was backpropagated), run
    `after_step`, then the scheduler. Returns {"loss", "lr"} with the learning rate the step used."""
    optimizer.step()
    if after_step is not None:
        after_step()
    lr = optimizer.param_groups[0]["lr"]
    if scheduler is not None:
        scheduler.step()
    return {"loss": loss.item(), "lr": lr}


def momentum_train_step(
    model: nn.Module,
    key_model: MomentumEncoder,
    views: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    images: torch.Tensor,
    loss_fn: MoCoLoss,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """One MoCo step (He et al. 2020, Algorithm 1): augment `images` (B, C, H, W) into two views,
    queries = model(view1), keys = key_model(view2) without gradient, loss_fn(queries, keys)
    (which then enqueues the keys, gathered across ranks), backward, optimizer (and scheduler)
    step, then the EMA update of the key encoder from the stepped weights. Returns {"loss", "lr"}.

    `key_model` is a `MomentumEncoder` built over the bare architecture of `model`; when `model`
    is wrapped (DDP, DataParallel: `.module` is the bare model), the EMA reads the bare model's
    parameters, so the parameter names match. The key encoder runs in training mode (batch
    statistics in its BatchNorm layers, as in the paper's code) but without MoCo's shuffled BN
    across GPUs. Each rank keeps its own key encoder: DDP keeps the query weights identical on
    every rank, so the EMA keeps the key weights identical too (the key encoder's BatchNorm
    running statistics are per rank).

    The loss is asymmetric, as in the paper (view1 -> queries, view2 -> keys). A symmetric
    variant (both view orders averaged) would enqueue the first term's keys before the second
    term is computed, putting the other view's key of the same image among its negatives,
    unless enqueueing were deferred; it is not done here.
    """
    model.train()
    key_model.train()
    loss_fn.train()
    view1, view2 = views(images)
    with torch.autocast(view1.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        queries = model(view1)  # (B, P)
        keys = key_model(view2)  # (B, P), no autograd
    loss = loss_fn(queries.float(), keys.float())
    return optimizer_step(loss, optimizer, scheduler, after_step=lambda: key_model.update(getattr(model, "module", model)))
