"""One optimisation step of contrastive training, as a plain function a test can call."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def train_step(
    model: nn.Module,
    views: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    images: torch.Tensor,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    autocast_dtype: torch.dtype | None = None,
    labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """Augment `images` (B, C, H, W) into two views, embed both in one forward pass, apply the
    loss (with the batch's `labels` (B,) when given), step the optimizer (and scheduler).
    Returns {"loss", "lr"}."""
    model.train()
    view1, view2 = views(images)
    batch = view1.shape[0]
    # One forward over both views keeps BatchNorm statistics shared, as in SimCLR.
    both = torch.cat([view1, view2], dim=0)  # (2B, C, H, W)
    with torch.autocast(both.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        projections = model(both)  # (2B, P)
    z1, z2 = projections.float().split(batch, dim=0)
    loss = loss_fn(z1, z2) if labels is None else loss_fn(z1, z2, labels=labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    lr = optimizer.param_groups[0]["lr"]
    if scheduler is not None:
        scheduler.step()
    return {"loss": loss.item(), "lr": lr}
