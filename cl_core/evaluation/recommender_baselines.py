"""The baselines a recommender must beat, scored like the model (`cl_core.evaluation.ranking`):
most-popular, and matrix factorisation trained with BPR (Rendle et al. 2009, "BPR: Bayesian
Personalized Ranking from Implicit Feedback", UAI).

Both fit on the training (user, item) index pairs and give `scores(users) -> (b, num_items)`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cl_core.evaluation.ranking import UserItems


class MostPopular:
    """Every user gets the items with the most training interactions first. Ties in the counts
    are broken by item index (lower first), so the ranking is a strict order and the metrics'
    pessimistic tie rule costs it nothing."""

    def __init__(self, num_items: int) -> None:
        self.num_items = num_items
        self.item_scores = torch.zeros(num_items, dtype=torch.float64)

    def fit(self, users: np.ndarray, items: np.ndarray) -> MostPopular:
        counts = np.bincount(np.asarray(items, dtype=np.int64), minlength=self.num_items).astype(np.float64)
        # A tie-break below one interaction: index i loses i / num_items of a count.
        self.item_scores = torch.as_tensor(counts - np.arange(self.num_items) / self.num_items)
        return self

    def scores(self, users: np.ndarray) -> torch.Tensor:
        """(b, num_items), the same row for every user."""
        return self.item_scores.expand(len(users), self.num_items)


class BPRMF:
    """Matrix factorisation with item biases, x_ui = p_u . q_i + b_i, trained by BPR: for each
    training pair (u, i) and an item j drawn uniformly among those u has not interacted with,
    minimise -log sigmoid(x_ui - x_uj) + reg * (|p_u|^2 + |q_i|^2 + |q_j|^2) with Adam.
    Deterministic for a seed on the CPU (the initialisation, the order and the negatives come
    from seeded generators)."""

    def __init__(
        self,
        num_users: int,
        num_items: int,
        dim: int = 64,
        epochs: int = 40,
        lr: float = 5e-3,
        reg: float = 1e-4,
        batch_size: int = 1024,
        seed: int = 0,
    ) -> None:
        if min(dim, epochs, batch_size) < 1 or lr <= 0 or reg < 0:
            raise ValueError(f"dim, epochs, batch_size must be >= 1, lr > 0 and reg >= 0; got {dim}, {epochs}, "
                             f"{batch_size}, {lr}, {reg}")
        self.num_users, self.num_items = num_users, num_items
        self.dim, self.epochs, self.lr, self.reg, self.batch_size, self.seed = dim, epochs, lr, reg, batch_size, seed
        generator = torch.Generator().manual_seed(seed)
        self.user_factors = (0.1 * torch.randn(num_users, dim, generator=generator)).requires_grad_()
        self.item_factors = (0.1 * torch.randn(num_items, dim, generator=generator)).requires_grad_()
        self.item_bias = torch.zeros(num_items, requires_grad=True)

    def _negatives(self, users: np.ndarray, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One item per user drawn uniformly among the items it has not interacted with (`codes`:
        the sorted user * num_items + item of the training pairs); after 20 rounds of rejection
        the rare clashes left are kept."""
        negatives = rng.integers(0, self.num_items, len(users))
        for _ in range(20):
            query = users * self.num_items + negatives
            place = np.searchsorted(codes, query).clip(max=len(codes) - 1)
            clash = codes[place] == query
            if not clash.any():
                break
            negatives[clash] = rng.integers(0, self.num_items, int(clash.sum()))
        return negatives

    def fit(self, users: np.ndarray, items: np.ndarray) -> BPRMF:
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        UserItems(users, items, self.num_users, self.num_items)  # checks the indices
        codes = np.sort(users * self.num_items + items)
        rng = np.random.default_rng(self.seed)
        parameters = [self.user_factors, self.item_factors, self.item_bias]
        optimizer = torch.optim.Adam(parameters, lr=self.lr)
        for _ in range(self.epochs):
            order = rng.permutation(len(users))
            negatives = self._negatives(users[order], codes, rng)
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                u = torch.as_tensor(users[rows])
                i = torch.as_tensor(items[rows])
                j = torch.as_tensor(negatives[start : start + self.batch_size])
                p, q_i, q_j = self.user_factors[u], self.item_factors[i], self.item_factors[j]  # (B, d)
                margin = (p * (q_i - q_j)).sum(dim=1) + self.item_bias[i] - self.item_bias[j]  # (B,)
                penalty = self.reg * (p.square().sum(dim=1) + q_i.square().sum(dim=1) + q_j.square().sum(dim=1))
                loss = (-F.logsigmoid(margin) + penalty).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return self

    @torch.no_grad()
    def scores(self, users: np.ndarray) -> torch.Tensor:
        """(b, num_items) x_ui."""
        p = self.user_factors[torch.as_tensor(np.asarray(users, dtype=np.int64))]
        return p @ self.item_factors.T + self.item_bias
