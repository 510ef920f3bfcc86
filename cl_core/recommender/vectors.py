"""The vectors a trained two-tower model scores with, for every user and item: what evaluation
ranks and what export writes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from cl_core.recommender.training_data import InteractionsData, TowerInputs


@torch.no_grad()
def tower_vectors(
    model: nn.Module, data: InteractionsData | TowerInputs, batch_size: int = 1024, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every user's vector (num_users, D), each user with its last training items as history
    (`InteractionsData.user_history`), and every item's (num_items, D); computed in eval mode, returned on the CPU. The
    score of user u for item i is their dot product (both unit length)."""
    inputs = data if isinstance(data, TowerInputs) else TowerInputs(data)
    bare = getattr(model, "module", model)  # DDP's forward would embed pairs, not one side
    device = device or next(bare.parameters()).device
    was_training = bare.training
    bare.eval()
    try:
        users = [bare.embed_users(inputs.user_batch(chunk).to(device)).cpu()
                 for chunk in torch.arange(inputs.num_users).split(batch_size)]
        items = [bare.embed_items(inputs.item_batch(chunk).to(device)).cpu()
                 for chunk in torch.arange(inputs.num_items).split(batch_size)]
    finally:
        bare.train(was_training)
    return torch.cat(users), torch.cat(items)


def vector_scorer(user_vectors: torch.Tensor, item_vectors: torch.Tensor) -> Callable[[np.ndarray], torch.Tensor]:
    """`score_fn` for `cl_core.evaluation.ranking.ranking_metrics`: users (b,) -> (b, I) dot
    products of their vectors (U, D) with the item vectors (I, D)."""

    def score(users: np.ndarray) -> torch.Tensor:
        return user_vectors[torch.as_tensor(users, dtype=torch.long)] @ item_vectors.T

    return score
