"""MoCo's queue of negatives (He et al. 2020, "Momentum Contrast for Unsupervised Visual
Representation Learning")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cl_core.losses.infonce import InfoNCELoss
from cl_core.losses.masking import gather_no_grad

# Every rank builds the same initial queue from this seed, so no broadcast is needed.
_QUEUE_SEED = 0


class MoCoLoss(nn.Module):
    """InfoNCE with the key as positive and a FIFO queue of past keys as negatives.

    For query q_i, its key k_i (from the momentum encoder) and the K queued keys n_1..n_K:
        l(i) = -log( exp(s(q_i, k_i)) / (exp(s(q_i, k_i)) + sum_j exp(s(q_i, n_j))) ),
        s = cosine / temperature,
    the mean over the B queries (MoCo, eq. 1). Keys and queue carry no gradient: only the query
    encoder learns; the key encoder follows it by EMA (`cl_core.models.momentum`).

    After the loss is computed, this step's keys are enqueued (in training mode only; in eval
    mode the queue is read, never written). The queue is a ring buffer: keys are written in
    order at `queue_ptr`, `queue_ptr + 1`, ... modulo `queue_size`, overwriting the oldest
    entries, so `queue_size` need not be a multiple of the batch (a batch larger than the queue
    leaves its last `queue_size` keys). `queue` (K, D) and `queue_ptr` are buffers, so they are
    saved in `state_dict` and restored with a checkpoint.

    Initialisation: the queue starts as L2-normalised Gaussian noise from a fixed seed, as in the
    paper's code, so the first K / batch steps see random negatives rather than none, and every
    rank starts from the same queue without communicating.

    With `gather_distributed=True` and an initialised process group, the keys enqueued are those
    of every rank, gathered without gradient and concatenated in rank order (one all_gather per
    training step; every rank must pass the same B), so all workers' queues stay identical and
    equal the queue one process would build from the concatenated batches. The loss itself uses
    only local queries and keys. With `gather_distributed=False` each rank enqueues only its own
    keys and the queues diverge across workers.
    """

    def __init__(
        self, temperature: float = 0.2, queue_size: int = 4096, dim: int = 128, gather_distributed: bool = True
    ) -> None:
        super().__init__()
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.infonce = InfoNCELoss(temperature)  # validates the temperature
        self.temperature = temperature
        self.queue_size = queue_size
        self.dim = dim
        self.gather_distributed = gather_distributed
        generator = torch.Generator().manual_seed(_QUEUE_SEED)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim, generator=generator), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """query: (B, D) from the online encoder; key: (B, D) from the momentum encoder, row i the
        other view of query i (detached here). Returns a scalar; then enqueues the keys."""
        if query.shape != key.shape or query.dim() != 2 or query.shape[1] != self.dim:
            raise ValueError(
                f"query and key must both be (B, {self.dim}); got {tuple(query.shape)} and {tuple(key.shape)}"
            )
        key = F.normalize(key.detach(), dim=1)
        # A copy: the matmul saves its operand for backward, and the enqueue below writes in place.
        negatives = self.queue.to(query.dtype, copy=True)  # (K, D)
        loss = self.infonce(query, key, negatives)
        if self.training:
            self.enqueue(gather_no_grad(key) if self.gather_distributed else key)
        return loss

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write `keys` (N, D) into the ring buffer in order, oldest entries first out."""
        count = keys.shape[0]
        keys = F.normalize(keys.detach(), dim=1).to(self.queue.dtype)
        # Writing more keys than slots in order would overwrite the first ones: keep the survivors.
        surplus = max(count - self.queue_size, 0)
        keys = keys[surplus:]
        # Pointer arithmetic stays on the device: no host sync per step.
        start = (self.queue_ptr + surplus) % self.queue_size
        slots = (start + torch.arange(keys.shape[0], device=self.queue.device)) % self.queue_size
        self.queue.index_copy_(0, slots, keys)
        self.queue_ptr.copy_((self.queue_ptr + count) % self.queue_size)
