"""The optimizer of every training run: AdamW, with the pretrained part at a fraction of the
head's learning rate when `train.backbone_lr_mult` says so."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from cl_core.config import TrainConfig


def parameter_groups(
    trained: Iterable[nn.Parameter], backbone: nn.Module, lr: float, backbone_lr_mult: float
) -> list[dict]:
    """AdamW parameter groups for the parameters in `trained` that require gradient: the head
    (everything outside `backbone`: projection, a loss's own parameters) at `lr` first, then
    `backbone`'s at `lr * backbone_lr_mult`. A multiplier of 1 gives one group, as the optimizer
    had before the multiplier existed (so older checkpoints' optimizer states still load).
    Frozen parameters (requires_grad False) are left out."""
    trained = [p for p in trained if p.requires_grad]
    if backbone_lr_mult == 1.0:
        return [{"params": trained, "lr": lr}]
    in_backbone = {id(p) for p in backbone.parameters()}
    head = [p for p in trained if id(p) not in in_backbone]
    body = [p for p in trained if id(p) in in_backbone]
    return [{"params": head, "lr": lr, "name": "head"}, {"params": body, "lr": lr * backbone_lr_mult, "name": "backbone"}]


def build_optimizer(
    model: nn.Module, loss_fn: nn.Module, backbone: nn.Module, train: TrainConfig
) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters of `model` (bare or DDP-wrapped) and `loss_fn`, the
    `backbone` (a submodule of the bare model) at `train.lr * train.backbone_lr_mult`."""
    groups = parameter_groups([*model.parameters(), *loss_fn.parameters()], backbone, train.lr, train.backbone_lr_mult)
    return torch.optim.AdamW(groups, lr=train.lr, weight_decay=train.weight_decay)
