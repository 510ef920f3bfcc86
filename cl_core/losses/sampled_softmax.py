"""In-batch sampled softmax with the logQ correction (Yi et al. 2019, "Sampling-bias-corrected
neural modeling for large corpus item recommendations", RecSys), the objective of the two-tower
recommender (`cl_core.models.two_tower`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cl_core import distributed
from cl_core.losses.masking import gather_no_grad


class SampledSoftmaxLoss(nn.Module):
    """Rank each user's interacted item above the other items of the (global) batch.

    For B (user, item) pairs with user vectors u_i, item vectors v_j (both L2-normalised here)
    and q_j the probability that item j fills a row of a batch:
        logits(i, j) = u_i . v_j / temperature - log q_j   over the batch's items j,
        loss = mean_i CE(logits(i, .), target i).
    The in-batch items are the negatives, and a popular item turns up as a negative far more
    often than the catalogue's share of it: without the correction the model learns to push
    popular items down. Subtracting log q_j (applied to every column, the positive included, as
    in the paper's eq. 3) makes the sampled softmax an unbiased estimate of the full one. Any
    constant factor in q (counts instead of frequencies) changes nothing: it shifts a whole row.
    With `log_q=None` the loss is the uncorrected in-batch softmax.

    With `gather_distributed=True` and an initialised process group the items are the global
    batch, gathered with gradients (`cl_core.distributed.gather_with_grad`), while each worker
    scores only its own users: the mean of the workers' losses, with DDP's gradient averaging,
    equals the loss of one process on the concatenated batch.

    False negatives ("accidental hits", as TensorFlow Recommenders calls them): another row of
    the global batch with this row's item (same `item_ids` entry) is the positive itself, not a
    negative; it would score exactly as the target and cap its probability at 1/2. Those columns
    are masked out (logit -inf), the row's own target kept. With `user_ids` as well, every column
    whose item this row's user has in some row of the global batch is a known positive of the
    user and is masked too (a user with ~100 interactions is often drawn twice into a batch).
    """

    def __init__(self, temperature: float = 0.05, gather_distributed: bool = True) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        log_q: torch.Tensor | None = None,
        *,
        item_ids: torch.Tensor | None = None,
        user_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """users, items: (B, D), row i one interaction; log_q: (B,) float, log of the sampling
        probability of row i's item (no gradient), or None; item_ids, user_ids: optional (B,)
        integers for false-negative masking. Returns a scalar."""
        if users.shape != items.shape or users.dim() != 2:
            raise ValueError(f"users and items must both be (B, D); got {tuple(users.shape)} and {tuple(items.shape)}")
        batch = users.shape[0]
        if log_q is not None and log_q.shape != (batch,):
            raise ValueError(f"log_q must have shape ({batch},), got {tuple(log_q.shape)}")
        users = F.normalize(users, dim=-1)
        items = F.normalize(items, dim=-1)

        if self.gather_distributed:
            all_items = distributed.gather_with_grad(items)  # (W*B, D)
            offset = distributed.rank() * batch if all_items.shape[0] != batch else 0
        else:
            all_items, offset = items, 0
        rows = torch.arange(batch, device=users.device)
        targets = rows + offset

        logits = users @ all_items.T / self.temperature  # (B, W*B)
        if log_q is not None:
            log_q = log_q.detach().to(device=logits.device, dtype=logits.dtype)
            all_log_q = gather_no_grad(log_q) if self.gather_distributed else log_q  # (W*B,)
            logits = logits - all_log_q[None, :]
        excluded = _known_positives(batch, item_ids, user_ids, self.gather_distributed, users.device)
        if excluded is not None:
            excluded[rows, targets] = False
            logits = logits.masked_fill(excluded, float("-inf"))
        return F.cross_entropy(logits, targets)


def _known_positives(
    batch: int, item_ids: torch.Tensor | None, user_ids: torch.Tensor | None, gather: bool, device: torch.device
) -> torch.Tensor | None:
    """(B, G) columns holding a known positive of each row: its own item, or with `user_ids` any
    item its user has in the global batch; None when no ids are given. Ids are non-negative
    indices, so a (user, item) pair is one integer code."""
    if item_ids is None:
        if user_ids is not None:
            raise ValueError("user_ids masks a user's other items: it needs item_ids too")
        return None
    local_items = _ids("item_ids", item_ids, batch, device)
    all_items = gather_no_grad(local_items) if gather else local_items  # (G,)
    if user_ids is None:
        return local_items[:, None] == all_items[None, :]
    local_users = _ids("user_ids", user_ids, batch, device)
    all_users = gather_no_grad(local_users) if gather else local_users  # (G,)
    # Membership of each (row's user, column's item) among the batch's pairs, by binary search
    # over the sorted pair codes: O(B*G log G), no (G, G) matrix. `width` stays a tensor (no sync).
    width = all_items.max() + 1
    pairs = torch.sort(all_users * width + all_items).values  # (G,)
    query = local_users[:, None] * width + all_items[None, :]  # (B, G)
    found = torch.searchsorted(pairs, query).clamp(max=pairs.shape[0] - 1)
    return pairs[found] == query


def _ids(name: str, ids: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    if ids.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(ids.shape)}")
    if ids.is_floating_point() or ids.is_complex():
        raise ValueError(f"{name} must be an integer tensor, got {ids.dtype}")
    return ids.to(device=device, dtype=torch.long)  # the same dtype on every rank, as all_gather needs
