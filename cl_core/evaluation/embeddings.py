"""Checking and widening embedding matrices passed to the metrics (tensors or numpy arrays)."""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray


def as_embeddings(x: ArrayLike, name: str) -> torch.Tensor:
    """`x` as a detached (N, D) tensor; `name` appears in the error for any other shape.

    float64 is kept so a float64 reference can match exactly; anything narrower (fp16/bf16 from
    mixed-precision inference) is widened to float32, since similarity sums, exponentials and
    near-ties between items must not be decided by bf16 rounding."""
    x = torch.as_tensor(x).detach()
    if x.dim() != 2:
        raise ValueError(f"{name} must be (N, D); got shape {tuple(x.shape)}")
    return x if x.dtype == torch.float64 else x.float()
