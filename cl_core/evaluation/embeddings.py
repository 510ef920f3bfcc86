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


def check_same_width(first: torch.Tensor | np.ndarray, second: torch.Tensor | np.ndarray, what: str) -> None:
    """Raise unless two (N, D) matrices have the same D; `what` names the pair in the error
    ("train and test embeddings")."""
    if first.shape[1] != second.shape[1]:
        raise ValueError(f"{what} differ in width: {first.shape[1]} vs {second.shape[1]}")


def check_labels_shape(y: torch.Tensor | np.ndarray, name: str, length: int) -> None:
    """Raise unless `y` is one label per row: shape (length,)."""
    if y.ndim != 1 or y.shape[0] != length:
        raise ValueError(f"{name} must be ({length},); got shape {tuple(y.shape)}")
