"""GradCache must give the parameter gradients of one full-batch loss: against a plain full-batch
backward for deterministic models, and against a full-batch graph with the same dropout masks
for stochastic ones."""

import copy

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cl_core.grad_cache import grad_cache_step
from cl_core.losses import CLIPLoss, NTXentLoss

BATCH, IN_DIM, OUT_DIM = 12, 5, 4
CHUNK_SIZES = [1, 5, 7, 12, 20]  # 5 and 7 do not divide 12; 20 is larger than the batch


def mlp(seed: int, batch_norm: bool = False, dropout: float = 0.3) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(IN_DIM, 16), nn.ReLU(), nn.Dropout(dropout)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(16))
    return nn.Sequential(*layers, nn.Linear(16, OUT_DIM)).double()


class TextTower(nn.Module):
    """A tower that takes keyword inputs, as a tokenised-text encoder does."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(3)

    def forward(self, tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.net(tokens * weights[:, None])


def setup(name: str, batch_norm: bool = False, dropout: float = 0.3):
    """(tower_a, tower_b, loss_fn, inputs_a, inputs_b), built afresh (same seeds) on each call."""
    generator = torch.Generator().manual_seed(0)
    xa, xb = (torch.randn(BATCH, IN_DIM, generator=generator, dtype=torch.float64) for _ in range(2))
    if name == "ntxent":
        shared = mlp(1, batch_norm, dropout)
        return shared, shared, NTXentLoss(0.3, gather_distributed=False).double(), xa, xb
    text = {"tokens": xb, "weights": torch.linspace(0.5, 1.5, BATCH, dtype=torch.float64)}
    loss_fn = CLIPLoss(0.1, learnable_temperature=True, gather_distributed=False).double()
    return mlp(2, batch_norm, dropout), TextTower(), loss_fn, xa, text


def embed(tower, x):
    return tower(**x) if isinstance(x, dict) else tower(x)


def chunked(x, size):
    if isinstance(x, dict):
        return [dict(zip(x, parts, strict=True)) for parts in zip(*(v.split(size) for v in x.values()), strict=True)]
    return list(x.split(size))


def gradients(*modules) -> list[torch.Tensor]:
    unique = {id(p): p for module in modules for p in module.parameters()}
    return [p.grad.clone() for p in unique.values()]


def run(name, *, grad_cache, chunk_size=None, train=True, batch_norm=False, dropout=0.3, seed=0):
    """Loss, parameter gradients (towers and loss) and the RNG state afterwards.

    The full-batch reference builds one graph and calls one backward over the whole batch. With
    `chunk_size`, its towers run chunk by chunk in GradCache's order (all of a, then all of b)
    so that dropout draws the masks GradCache draws; without, in one forward each."""
    tower_a, tower_b, loss_fn, xa, xb = setup(name, batch_norm, dropout)
    tower_a.train(train)
    tower_b.train(train)
    torch.manual_seed(seed)
    if grad_cache:
        loss = grad_cache_step(tower_a, xa, xb, loss_fn, chunk_size, model_b=tower_b)
    else:
        if chunk_size is None:
            za, zb = embed(tower_a, xa), embed(tower_b, xb)
        else:
            za = torch.cat([embed(tower_a, c) for c in chunked(xa, chunk_size)])
            zb = torch.cat([embed(tower_b, c) for c in chunked(xb, chunk_size)])
        loss = loss_fn(za, zb)
        loss.backward()
    return loss.detach(), gradients(tower_a, tower_b, loss_fn), torch.get_rng_state()


def assert_same(got, expected):
    (loss, grads, _), (reference_loss, reference_grads, _) = got, expected
    assert torch.allclose(loss, reference_loss, atol=1e-12)
    assert len(grads) == len(reference_grads)
    for grad, reference in zip(grads, reference_grads, strict=True):
        assert torch.allclose(grad, reference, atol=1e-6, rtol=0), (grad - reference).abs().max()


@pytest.mark.parametrize("name", ["ntxent", "clip"])
@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_deterministic_model_gets_the_plain_full_batch_gradients(name, chunk_size):
    # Eval mode: dropout off and BatchNorm on running statistics, so nothing depends on the chunk.
    expected = run(name, grad_cache=False, train=False, batch_norm=True)
    assert_same(run(name, grad_cache=True, chunk_size=chunk_size, train=False, batch_norm=True), expected)


@pytest.mark.parametrize("name", ["ntxent", "clip"])
@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_dropout_is_replayed_so_gradients_equal_the_full_batch_graph(name, chunk_size):
    got = run(name, grad_cache=True, chunk_size=chunk_size)
    expected = run(name, grad_cache=False, chunk_size=chunk_size)
    assert_same(got, expected)
    # The second pass consumed no randomness: the RNG ends where one forward pass leaves it.
    assert torch.equal(got[2], expected[2])
    # And dropout was really on: the deterministic model gives other gradients.
    deterministic = run(name, grad_cache=False, train=False)
    assert not torch.allclose(got[1][0], deterministic[1][0])


def test_loss_parameters_get_their_gradient():
    _, grads, _ = run("clip", grad_cache=True, chunk_size=5)
    assert grads[-1].abs() > 0  # CLIP's learnable log logit scale


def test_batch_norm_in_training_mode_sees_chunks_not_the_batch():
    # The documented limitation, pinned down: without dropout, training-mode BatchNorm makes the
    # gradients depend on the chunking, and one chunk spanning the batch restores them.
    expected = run("ntxent", grad_cache=False, batch_norm=True, dropout=0.0)
    assert_same(run("ntxent", grad_cache=True, chunk_size=BATCH, batch_norm=True, dropout=0.0), expected)
    chunked_bn = run("ntxent", grad_cache=True, chunk_size=5, batch_norm=True, dropout=0.0)
    assert not torch.allclose(chunked_bn[1][0], expected[1][0], atol=1e-6)


def test_optimizer_is_zeroed_and_stepped_and_gradients_accumulate_without_it():
    tower_a, tower_b, loss_fn, xa, xb = setup("ntxent")
    grad_cache_grads = run("ntxent", grad_cache=True, chunk_size=5)[1]
    reference = [p.detach() - 0.5 * g for p, g in zip(tower_a.parameters(), grad_cache_grads, strict=True)]
    for p in tower_a.parameters():
        p.grad = torch.full_like(p, 100.0)  # stale gradients must not leak into the step
    optimizer = torch.optim.SGD(tower_a.parameters(), lr=0.5)
    torch.manual_seed(0)
    grad_cache_step(tower_a, xa, xb, loss_fn, 5, optimizer)
    for param, expected in zip(tower_a.parameters(), reference, strict=True):
        assert torch.allclose(param, expected, atol=1e-12)

    tower_a, _, loss_fn, xa, xb = setup("ntxent")
    for _ in range(2):
        torch.manual_seed(0)
        grad_cache_step(tower_a, xa, xb, loss_fn, 5)
    once = run("ntxent", grad_cache=True, chunk_size=5)[1]
    for param, single in zip(tower_a.parameters(), once, strict=True):
        assert torch.allclose(param.grad, 2 * single, atol=1e-12)


def test_rejects_a_non_positive_chunk_size():
    tower_a, _, loss_fn, xa, xb = setup("ntxent")
    with pytest.raises(ValueError, match="chunk_size"):
        grad_cache_step(tower_a, xa, xb, loss_fn, 0)


# --- two real processes (gloo) with DDP ----------------------------------------------------------

WORLD, LOCAL = 2, 6


def _worker(rank: int) -> dict:
    tower, _, _, xa, xb = setup("ntxent")
    model = DistributedDataParallel(tower.eval())
    rows = slice(rank * LOCAL, (rank + 1) * LOCAL)
    loss = grad_cache_step(model, xa[rows], xb[rows], NTXentLoss(0.3, gather_distributed=True), chunk_size=4)
    dist.all_reduce(loss)
    return {"loss": loss / WORLD, "grads": gradients(tower)}


def test_ddp_with_gathered_negatives_equals_one_process_on_the_global_batch(run_distributed):
    results = run_distributed(_worker, WORLD)
    expected = run("ntxent", grad_cache=False, train=False)  # BATCH = WORLD * LOCAL rows
    for rank in range(WORLD):
        assert_same((results[rank]["loss"], results[rank]["grads"], None), expected)


# --- the training steps' form: `chunked_backward` under train.grad_cache_chunk --------------------
# Each step below runs once without chunks and once with, on the same weights (SGD at lr 0 keeps
# them), and the parameter gradients are compared. float64 throughout: the chunked and the plain
# backward sum the same terms in another order, so they agree to about 1e-12, not bit for bit.

STEP_TOLERANCE = 1e-10
IMAGE_ROWS, IMAGE_SIDE = 6, 4  # per worker


def tiny_encoder(seed: int = 5) -> nn.Module:
    """An image encoder without BatchNorm or dropout: chunking then changes nothing but memory."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(IMAGE_SIDE * IMAGE_SIDE, 16), nn.Tanh(), nn.Linear(16, OUT_DIM)).double()


def flip_views(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return images, images.flip(-1) * 0.5


def image_step_gradients(model: nn.Module, loss_fn: nn.Module, images, labels, chunk_size) -> tuple[float, list]:
    from cl_core.training_step import train_step

    optimizer = torch.optim.SGD(list(model.parameters()) + list(loss_fn.parameters()), lr=0.0)
    done = train_step(model, flip_views, images, loss_fn, optimizer, labels=labels, chunk_size=chunk_size)
    return done["loss"], gradients(model, loss_fn)


def image_objective(name: str, gather: bool) -> nn.Module:
    from cl_core.config.sections import LossConfig
    from cl_core.losses import build_objective
    from cl_core.modalities.image import IMAGE

    loss = LossConfig(name=name, temperature=0.3, learnable_temperature=name == "clip")
    return build_objective(loss, IMAGE.name, proj_dim=OUT_DIM, gather_distributed=gather).double()


def global_images() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    images = torch.randn(2 * IMAGE_ROWS, 1, IMAGE_SIDE, IMAGE_SIDE, generator=generator, dtype=torch.float64)
    return images, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 3, 0])


STEP_OBJECTIVES = ["ntxent", "supcon", "mnrl", "clip"]


def _step_worker(rank: int) -> dict:
    images, labels = global_images()
    rows = slice(rank * IMAGE_ROWS, (rank + 1) * IMAGE_ROWS)
    out = {}
    for name in STEP_OBJECTIVES:
        model, loss_fn = DistributedDataParallel(tiny_encoder()), image_objective(name, gather=True)
        mine = labels[rows] if name == "supcon" else None
        out[name] = {chunk: image_step_gradients(model, loss_fn, images[rows], mine, chunk) for chunk in (None, 5, 2)}
    return out


def test_a_chunked_step_on_two_workers_gives_the_unchunked_gradients(run_distributed):
    """NT-Xent, SupCon, MNRL and CLIP on two gloo workers, each embedding 12 view images (6 images,
    two views) in chunks of 5 (not a divisor) and of 2, gathered negatives across the workers."""
    results = run_distributed(_step_worker, WORLD)
    for rank in range(WORLD):
        for name in STEP_OBJECTIVES:
            plain_loss, plain = results[rank][name][None]
            for chunk in (5, 2):
                loss, grads = results[rank][name][chunk]
                assert loss == pytest.approx(plain_loss, abs=STEP_TOLERANCE), (name, chunk)
                assert len(grads) == len(plain)
                for got, expected in zip(grads, plain, strict=True):
                    torch.testing.assert_close(got, expected, atol=STEP_TOLERANCE, rtol=0, msg=f"{name}, chunk {chunk}")
    # the workers' gradients are the DDP average, the same on both
    for got, expected in zip(results[0]["ntxent"][2][1], results[1]["ntxent"][2][1], strict=True):
        torch.testing.assert_close(got, expected, atol=STEP_TOLERANCE, rtol=0)


def test_chunks_give_one_process_the_global_batchs_gradients():
    images, labels = global_images()
    model, loss_fn = tiny_encoder(), image_objective("supcon", gather=False)
    plain_loss, plain = image_step_gradients(model, loss_fn, images, labels, None)
    loss, grads = image_step_gradients(model, loss_fn, images, labels, 3)
    assert loss == pytest.approx(plain_loss, abs=STEP_TOLERANCE)
    for got, expected in zip(grads, plain, strict=True):
        torch.testing.assert_close(got, expected, atol=STEP_TOLERANCE, rtol=0)


def test_batch_norm_statistics_move_once_per_chunk_not_twice():
    """The gradient-free first pass leaves the running statistics as they were; the second pass
    updates them once per chunk, as that many ordinary forward passes would."""
    from cl_core.grad_cache import chunked_backward, split_rows

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(IN_DIM, 8), nn.BatchNorm1d(8), nn.Linear(8, OUT_DIM)).double()
    reference = copy.deepcopy(model)
    x = torch.randn(BATCH, IN_DIM, dtype=torch.float64)
    chunked_backward(model, split_rows(x, 4), lambda e: e.pow(2).sum())
    for part in x.split(4):
        reference(part)
    bn, expected = model[1], reference[1]
    assert int(bn.num_batches_tracked) == 3
    torch.testing.assert_close(bn.running_mean, expected.running_mean)
    torch.testing.assert_close(bn.running_var, expected.running_var)


def test_dropout_is_replayed_and_the_rng_ends_where_one_pass_leaves_it():
    from cl_core.grad_cache import chunked_backward, split_rows

    model = mlp(4, dropout=0.5)
    x = torch.randn(BATCH, IN_DIM, dtype=torch.float64)
    torch.manual_seed(11)
    loss = chunked_backward(model, split_rows(x, 5), lambda e: e.pow(2).sum())
    after, grads = torch.get_rng_state(), gradients(model)
    torch.manual_seed(11)
    model.zero_grad(set_to_none=True)
    parts = [model(part) for part in x.split(5)]  # the same masks, drawn chunk by chunk
    expected = torch.cat(parts).float().pow(2).sum()  # the loss reads float32 embeddings, as training's does
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-12)
    for got, want in zip(grads, gradients(model), strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    assert torch.equal(torch.get_rng_state(), after)
