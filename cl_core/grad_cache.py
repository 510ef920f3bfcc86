"""Gradient caching for contrastive losses (Gao et al. 2021, "Scaling Deep Contrastive Learning
Batch Size under Memory Limited Setup").

Plain gradient accumulation adds no negatives: each micro-batch's loss sees only that
micro-batch's negatives, so accumulating 8 micro-batches of 64 optimises a batch-64 contrastive
loss, not a batch-512 one. That is why GradCache exists: it computes the loss (and its
negatives) over the full batch while keeping activation memory at one chunk.

The loss is a function of the embeddings only, so its gradient w.r.t. the parameters factors
through the embeddings: dL/dtheta = sum_i (dL/de_i) (de_i/dtheta). GradCache
    1. embeds every chunk without autograd (no activations are kept),
    2. makes the concatenated embeddings leaf tensors, computes the full-batch loss on them and
       backpropagates to get dL/de (a (B, D) cache, small),
    3. re-embeds each chunk with autograd and backpropagates its slice of dL/de, accumulating the
       parameter gradients chunk by chunk.
Peak activation memory is one chunk's graph, at the price of a second forward pass.

Randomness (dropout, stochastic depth, augmentation inside the model) is replayed: the RNG state
before each chunk's first pass is saved and restored for its second pass, so both passes compute
the same function. The global RNG ends where a single pass would have left it.

Batch-dependent layers break the factorisation: BatchNorm in training mode normalises each chunk
by the chunk's own statistics (and updates its running statistics twice per chunk), so the
gradients equal the full-batch ones only for models without batch-dependent layers, or with
BatchNorm in eval mode (or replaced by GroupNorm / LayerNorm). SimCLR's cross-view BatchNorm
coupling is likewise limited to a chunk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

Inputs = torch.Tensor | Mapping[str, torch.Tensor]


def split_rows(inputs: Inputs, chunk_size: int) -> list[Inputs]:
    """Chunks of at most `chunk_size` rows, along dim 0 (of every tensor of a mapping)."""
    if isinstance(inputs, torch.Tensor):
        return list(inputs.split(chunk_size, dim=0))
    columns = {name: tensor.split(chunk_size, dim=0) for name, tensor in inputs.items()}
    counts = {len(chunks) for chunks in columns.values()}
    if len(counts) != 1:
        raise ValueError("all tensors of a mapping input must have the same number of rows")
    return [{name: chunks[i] for name, chunks in columns.items()} for i in range(counts.pop())]


def _embed(model: nn.Module, chunk: Inputs) -> torch.Tensor:
    return model(**chunk) if isinstance(chunk, Mapping) else model(chunk)


def _cuda_devices(model: nn.Module, chunk: Inputs) -> list[int]:
    tensors = list(chunk.values()) if isinstance(chunk, Mapping) else [chunk]
    tensors += list(model.parameters())
    return sorted({t.device.index for t in tensors if t.is_cuda})


class _RngState:
    """The CPU and CUDA RNG states at construction, replayable later."""

    def __init__(self, devices: list[int]) -> None:
        self.devices = devices
        self.cpu = torch.get_rng_state()
        self.cuda = [torch.cuda.get_rng_state(device) for device in devices]

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        # fork_rng puts the current state back on exit, so replaying consumes no randomness.
        with torch.random.fork_rng(devices=self.devices):
            torch.set_rng_state(self.cpu)
            for device, state in zip(self.devices, self.cuda, strict=True):
                torch.cuda.set_rng_state(state, device)
            yield


def grad_cache_step(
    model: nn.Module,
    inputs_a: Inputs,
    inputs_b: Inputs,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    chunk_size: int,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    model_b: nn.Module | None = None,
) -> torch.Tensor:
    """One step of a two-view / two-tower contrastive loss over the full batch, embedding at
    most `chunk_size` rows at a time.

    Args:
        model: embeds `inputs_a` (and `inputs_b` unless `model_b` is given) into (B, D).
        inputs_a, inputs_b: (B, ...) tensors, or mappings of (B, ...) tensors passed to the
            model as keyword arguments (tokenised text); row i of each is pair i.
        loss_fn: (B, D), (B, D) -> scalar, e.g. `NTXentLoss` or `CLIPLoss`; its own parameters
            (a learnable temperature) receive their gradient directly.
        chunk_size: rows per forward pass; need not divide B.
        optimizer: when given, gradients are zeroed first and the optimizer steps after;
            otherwise the gradients are added to the parameters' `.grad` and the caller steps.
        model_b: a second tower for `inputs_b` (CLIP's text encoder).

    Returns the detached loss. A DDP-wrapped tower synchronises its gradients only on its last
    chunk's backward (the others run under `no_sync()`).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    towers = (model, model if model_b is None else model_b)
    chunks = [split_rows(inputs, chunk_size) for inputs in (inputs_a, inputs_b)]
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)

    # 1. Embed without autograd, remembering each chunk's RNG state.
    rng_states: list[list[_RngState]] = [[], []]
    embeddings: list[torch.Tensor] = []
    with torch.no_grad():
        for tower, tower_chunks, states in zip(towers, chunks, rng_states, strict=True):
            parts = []
            for chunk in tower_chunks:
                states.append(_RngState(_cuda_devices(tower, chunk)))
                parts.append(_embed(tower, chunk))  # (chunk, D)
            embeddings.append(torch.cat(parts).requires_grad_())  # (B, D), a leaf

    # 2. The full-batch loss and its gradient w.r.t. the embeddings.
    loss = loss_fn(*embeddings)
    loss.backward()
    cached = [e.grad.split(chunk_size, dim=0) for e in embeddings]  # (chunk, D) slices

    # 3. Re-embed each chunk with autograd, replaying its randomness, and push its cached gradient.
    jobs = [(t, c, g, s) for i, t in enumerate(towers) for c, g, s in zip(chunks[i], cached[i], rng_states[i], strict=True)]
    last_job = {id(tower): index for index, (tower, *_) in enumerate(jobs)}
    for index, (tower, chunk, grad, state) in enumerate(jobs):
        sync = last_job[id(tower)] == index or not hasattr(tower, "no_sync")
        with contextlib.nullcontext() if sync else tower.no_sync(), state.replay():
            _embed(tower, chunk).backward(grad)

    if optimizer is not None:
        optimizer.step()
    return loss.detach()


@contextlib.contextmanager
def _buffers_kept(model: nn.Module) -> Iterator[None]:
    """Put the model's buffers (BatchNorm's running statistics) back as they were on exit, so the
    first, gradient-free pass of `chunked_backward` leaves them as one ordinary pass would."""
    saved = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def _first_tensor(chunk: Inputs) -> torch.Tensor:
    return chunk if isinstance(chunk, torch.Tensor) else next(iter(chunk.values()))


def chunked_backward(
    model: nn.Module,
    chunks: Sequence[Inputs],
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Backpropagate `loss_of(embeddings)` into the model's `.grad`, where `embeddings` (N, D) are
    the model's outputs on `chunks` (`split_rows` of the step's inputs, or texts tokenised chunk by
    chunk) concatenated in order, running the model on one chunk at a time: the training task's
    form of GradCache, where one forward would embed every row of the step (both views of each
    image, every sentence) and the loss reads the float32 embeddings only (it may gather them
    across workers).

    The caller zeroes the gradients before and steps after. A DDP-wrapped model synchronises its
    gradients on the last chunk only. Randomness in the model (dropout) is replayed chunk by
    chunk, and buffers are updated by the second pass only; BatchNorm in training mode normalises
    each chunk by its own statistics (see the module's notes). Returns the detached loss.
    """
    if not chunks:
        raise ValueError("chunked_backward needs at least one chunk")
    device_type = _first_tensor(chunks[0]).device.type
    autocast = lambda: torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None)  # noqa: E731
    states: list[_RngState] = []
    with torch.no_grad(), _buffers_kept(model):
        parts = []
        for chunk in chunks:
            states.append(_RngState(_cuda_devices(model, chunk)))
            with autocast():
                parts.append(_embed(model, chunk).float())
    embeddings = torch.cat(parts).requires_grad_()  # (N, D), a leaf
    loss = loss_of(embeddings)
    loss.backward()
    cached = embeddings.grad.split([_first_tensor(chunk).shape[0] for chunk in chunks], dim=0)
    for index, (chunk, grad, state) in enumerate(zip(chunks, cached, states, strict=True)):
        sync = index == len(chunks) - 1 or not hasattr(model, "no_sync")
        with contextlib.nullcontext() if sync else model.no_sync(), state.replay():
            with autocast():
                out = _embed(model, chunk)
            out.float().backward(grad)
    return loss.detach()
