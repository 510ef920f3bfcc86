import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cl_core.losses import MoCoLoss, build_loss
from cl_core.models.momentum import MomentumEncoder, momentum_update
from tests.cl_core.losses import reference as ref


def naive_moco(query, key, queue, temperature):
    """Query by query: -log(e^{s(q,k)} / (e^{s(q,k)} + sum_j e^{s(q,n_j)})), s = cosine / T."""
    total = 0.0
    for i in range(query.shape[0]):
        numerator = ref.exp_cosine(query[i], key[i], temperature)
        denominator = numerator + sum(ref.exp_cosine(query[i], queue[j], temperature) for j in range(queue.shape[0]))
        total = total - torch.log(numerator / denominator)
    return total / query.shape[0]


class RingBuffer:
    """The FIFO written out key by key: the obviously correct reference for `enqueue`."""

    def __init__(self, queue: torch.Tensor) -> None:
        self.slots = list(queue.clone())
        self.ptr = 0

    def push(self, keys: torch.Tensor) -> None:
        for key in F.normalize(keys, dim=1):
            self.slots[self.ptr] = key
            self.ptr = (self.ptr + 1) % len(self.slots)

    def queue(self) -> torch.Tensor:
        return torch.stack(self.slots)


@ref.parametrize_grid(batch=[1, 4, 9], queue_size=[1, 7, 32], temperature=[0.07, 0.5])
def test_matches_naive_reference(batch, queue_size, temperature):
    query, key = ref.seeded_randn(batch * queue_size, (batch, 6), (batch, 6))
    loss_fn = MoCoLoss(temperature, queue_size=queue_size, dim=6, gather_distributed=False).double()
    queue = loss_fn.queue.clone()
    ref.assert_matches_reference(loss_fn(query, key), naive_moco(query, key, queue, temperature))


def test_exact_value_on_hand_built_case():
    # Query = key = e0, two queued keys e1 (sim 0), T = 1: l = -log(e / (e + 2)).
    loss_fn = MoCoLoss(temperature=1.0, queue_size=2, dim=2)
    loss_fn.queue.copy_(torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    loss = loss_fn(torch.tensor([[3.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(-math.log(math.e / (math.e + 2.0)), abs=1e-6)


def test_invariant_to_scale_and_batch_permutation():
    generator = torch.Generator().manual_seed(3)
    query, key = ref.randn_from(generator, (8, 16), (8, 16))
    loss_fn = MoCoLoss(0.2, queue_size=64, dim=16).eval()  # eval: the queue stays put between calls
    ref.assert_invariant_to_scale_and_permutation(loss_fn, (query, key), (2.0, 0.1), generator)


def test_gradient_reaches_the_query_only_and_backward_survives_the_enqueue():
    query = torch.randn(4, 8, requires_grad=True)
    key = torch.randn(4, 8, requires_grad=True)
    loss = MoCoLoss(0.2, queue_size=16, dim=8)(query, key)  # enqueues in place before backward
    loss.backward()
    assert query.grad is not None and torch.isfinite(query.grad).all() and query.grad.abs().sum() > 0
    assert key.grad is None


def test_queue_is_deterministic_unit_norm_and_identical_across_instances():
    a, b = MoCoLoss(queue_size=50, dim=12), MoCoLoss(queue_size=50, dim=12)
    assert torch.equal(a.queue, b.queue)
    assert torch.allclose(a.queue.norm(dim=1), torch.ones(50), atol=1e-6)
    assert a.queue_ptr.item() == 0


@pytest.mark.parametrize("queue_size", [1, 5, 8])
def test_enqueue_is_fifo_with_wrap_around(queue_size):
    generator = torch.Generator().manual_seed(queue_size)
    loss_fn = MoCoLoss(0.2, queue_size=queue_size, dim=3, gather_distributed=False)
    reference = RingBuffer(loss_fn.queue)
    # Uneven batches that wrap the pointer, one larger than the queue itself.
    for batch in [2, 3, 1, queue_size + 3, 4, 2]:
        query, key = torch.randn(batch, 3, generator=generator), torch.randn(batch, 3, generator=generator)
        loss_fn(query, key)
        reference.push(key)
        assert loss_fn.queue_ptr.item() == reference.ptr
        assert torch.allclose(loss_fn.queue, reference.queue(), atol=1e-6)


def test_enqueue_pointer_and_slots_by_hand():
    loss_fn = MoCoLoss(0.2, queue_size=5, dim=2)
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 1.0], [1.0, -1.0]])
    initial = loss_fn.queue.clone()
    loss_fn.enqueue(keys[:2])
    assert loss_fn.queue_ptr.item() == 2
    assert torch.equal(loss_fn.queue[:2], keys[:2]) and torch.equal(loss_fn.queue[2:], initial[2:])
    loss_fn.enqueue(keys[2:])  # 4 keys from slot 2: slots 2, 3, 4, then wraps to 0
    assert loss_fn.queue_ptr.item() == 1
    expected = torch.stack([F.normalize(keys[5], dim=0), keys[1], keys[2], keys[3], F.normalize(keys[4], dim=0)])
    assert torch.allclose(loss_fn.queue, expected)


def test_eval_mode_reads_the_queue_without_writing_it():
    loss_fn = MoCoLoss(0.2, queue_size=8, dim=4).eval()
    before = loss_fn.queue.clone()
    loss_fn(torch.randn(3, 4), torch.randn(3, 4))
    assert torch.equal(loss_fn.queue, before) and loss_fn.queue_ptr.item() == 0


def test_queue_and_pointer_travel_with_the_state_dict():
    trained = MoCoLoss(0.2, queue_size=8, dim=4)
    trained(torch.randn(3, 4), torch.randn(3, 4))
    state = trained.state_dict()
    assert set(state) == {"queue", "queue_ptr"}
    restored = MoCoLoss(0.2, queue_size=8, dim=4)
    restored.load_state_dict(state)
    assert torch.equal(restored.queue, trained.queue) and restored.queue_ptr.item() == 3


def test_rejects_bad_configuration_and_shapes():
    with pytest.raises(ValueError, match="temperature"):
        MoCoLoss(temperature=0.0)
    with pytest.raises(ValueError, match="queue_size"):
        MoCoLoss(queue_size=0)
    with pytest.raises(ValueError, match="dim"):
        MoCoLoss(dim=0)
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        MoCoLoss(queue_size=4, dim=8)(torch.randn(2, 6), torch.randn(2, 6))


def test_registry_builds_moco_by_name():
    loss = build_loss("moco", temperature=0.1, queue_size=16, dim=8, gather_distributed=False)
    assert isinstance(loss, MoCoLoss) and loss.queue.shape == (16, 8) and loss.gather_distributed is False


# --- two real processes (gloo) -------------------------------------------------------------------

WORLD, BATCH, DIM, QUEUE, STEPS = 2, 3, 4, 10, 5  # 6 keys a step into 10 slots: the pointer wraps


def _global_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(5)
    return [
        (
            torch.randn(WORLD * BATCH, DIM, generator=generator, dtype=torch.float64),
            torch.randn(WORLD * BATCH, DIM, generator=generator, dtype=torch.float64),
        )
        for _ in range(STEPS)
    ]


def _worker(rank: int) -> dict:
    loss_fn = MoCoLoss(0.3, queue_size=QUEUE, dim=DIM, gather_distributed=True).double()
    rows = slice(rank * BATCH, (rank + 1) * BATCH)
    losses = []
    for query, key in _global_batches():
        losses.append(loss_fn(query[rows], key[rows]).detach())
    return {"queue": loss_fn.queue.clone(), "ptr": loss_fn.queue_ptr.item(), "losses": losses}


def test_two_process_queues_are_identical_and_equal_the_single_process_queue(run_distributed):
    results = run_distributed(_worker, WORLD)

    reference = MoCoLoss(0.3, queue_size=QUEUE, dim=DIM, gather_distributed=False).double()
    reference_losses = [reference(query, key).detach() for query, key in _global_batches()]
    assert torch.equal(results[0]["queue"], results[1]["queue"])
    for rank in range(WORLD):
        assert torch.allclose(results[rank]["queue"], reference.queue, atol=1e-12)
        assert results[rank]["ptr"] == reference.queue_ptr.item() == (STEPS * WORLD * BATCH) % QUEUE
    # Equal local batches: the mean of the ranks' losses is the loss on the concatenated batch.
    for step, expected in enumerate(reference_losses):
        mean = (results[0]["losses"][step] + results[1]["losses"][step]) / WORLD
        assert torch.allclose(mean, expected, atol=1e-12)


# --- momentum encoder ----------------------------------------------------------------------------


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


@pytest.mark.parametrize("m", [0.0, 0.9, 0.999, 1.0])
def test_momentum_update_is_the_ema_of_every_parameter(m):
    torch.manual_seed(0)
    online, target = _net(), _net()
    before = {name: p.clone() for name, p in target.named_parameters()}
    buffers = {name: b.clone() for name, b in target.named_buffers()}
    momentum_update(online, target, m)
    for name, param in target.named_parameters():
        expected = m * before[name] + (1 - m) * dict(online.named_parameters())[name]
        assert torch.allclose(param, expected, atol=1e-7), name
    for name, buffer in target.named_buffers():
        assert torch.equal(buffer, buffers[name]), name  # running statistics are the target's own


def test_momentum_encoder_is_a_frozen_copy_that_follows_by_ema():
    torch.manual_seed(1)
    online = _net()
    encoder = MomentumEncoder(online, momentum=0.5)
    assert all(not p.requires_grad for p in encoder.parameters())
    assert all(torch.equal(a, b) for a, b in zip(encoder.target.parameters(), online.parameters(), strict=True))
    target_weight = encoder.target[0].weight.clone()
    with torch.no_grad():
        online[0].weight.add_(1.0)
    assert torch.equal(encoder.target[0].weight, target_weight)  # a deep copy, not shared storage
    encoder.update(online)
    assert torch.allclose(encoder.target[0].weight, 0.5 * target_weight + 0.5 * online[0].weight)
    out = encoder(torch.randn(5, 3))
    assert out.shape == (5, 2) and not out.requires_grad


@pytest.mark.parametrize("m", [-0.1, 1.5])
def test_momentum_outside_unit_interval_is_rejected(m):
    with pytest.raises(ValueError, match="momentum"):
        MomentumEncoder(_net(), momentum=m)
    with pytest.raises(ValueError, match="momentum"):
        momentum_update(_net(), _net(), m)


def test_a_moco_step_trains_the_query_encoder_and_fills_the_queue():
    torch.manual_seed(2)
    query_encoder = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8))
    key_encoder = MomentumEncoder(query_encoder, momentum=0.99)
    loss_fn = MoCoLoss(0.2, queue_size=12, dim=8)
    optimizer = torch.optim.SGD(query_encoder.parameters(), lr=0.1)
    for _ in range(3):
        x = torch.randn(4, 6)
        view1, view2 = x + 0.05 * torch.randn_like(x), x + 0.05 * torch.randn_like(x)
        loss = loss_fn(query_encoder(view1), key_encoder(view2))
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in query_encoder.parameters())
        optimizer.step()
        key_encoder.update(query_encoder)
    assert torch.isfinite(loss) and loss_fn.queue_ptr.item() == 0  # 3 steps x 4 keys = 12 slots
