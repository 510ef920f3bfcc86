"""The momentum (EMA) key encoder of MoCo (He et al. 2020, section 3.2), also BYOL's target network."""

from __future__ import annotations

import copy

import torch
from torch import nn


def _check_momentum(m: float) -> None:
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {m}")


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, m: float) -> None:
    """theta_target <- m * theta_target + (1 - m) * theta_online, parameter by parameter.

    m = 0 copies the online weights, m = 1 freezes the target. Both modules must have the same
    parameters (same names and shapes). Buffers such as BatchNorm running statistics are left
    to the target's own forward passes, as for MoCo's key encoder.
    """
    _check_momentum(m)
    online_params = dict(online.named_parameters())
    target_params = dict(target.named_parameters())
    if online_params.keys() != target_params.keys():
        raise ValueError("online and target modules must have the same parameters")
    for name, target_param in target_params.items():
        target_param.lerp_(online_params[name].detach().to(target_param.dtype), 1.0 - m)


class MomentumEncoder(nn.Module):
    """A frozen deep copy of an online encoder, moved towards it by EMA with `update(online)`.

    Its parameters never require gradient and `forward` runs without autograd, so it adds
    neither optimizer state nor activation memory; a DDP wrapper around the online encoder
    ignores it. Typical use, once per step after `optimizer.step()`: `key_encoder.update(model)`.
    """

    def __init__(self, online: nn.Module, momentum: float = 0.999) -> None:
        super().__init__()
        _check_momentum(momentum)
        self.momentum = momentum
        self.target = copy.deepcopy(online)
        self.target.requires_grad_(False)

    def update(self, online: nn.Module) -> None:
        momentum_update(online, self.target, self.momentum)

    @torch.no_grad()
    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.target(*args, **kwargs)
