"""The SimCLR projection head: an MLP applied after the encoder, used only by the loss."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """(B, in_dim) -> (B, out_dim) through Linear-BN-ReLU-Linear (Chen et al. 2020, section 2.1)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
