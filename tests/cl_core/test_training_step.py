import math

import torch

from cl_core.losses import MoCoLoss, NTXentLoss
from cl_core.models import build_simclr
from cl_core.models.momentum import MomentumEncoder
from cl_core.training_step import momentum_train_step, train_step
from cl_core.views import SimCLRViews


def test_train_step_updates_parameters_and_reduces_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_simclr(1, 8, (1,), (8,), proj_hidden=16, proj_dim=8)
    images = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    no_augmentation = lambda x: (x.float() / 255, x.float() / 255)  # noqa: E731
    before = [p.detach().clone() for p in model.parameters()]
    first = train_step(model, no_augmentation, images, NTXentLoss(0.5), optimizer)
    for _ in range(20):
        last = train_step(model, no_augmentation, images, NTXentLoss(0.5), optimizer)
    assert set(first) == {"loss", "lr"} and first["lr"] == 1e-2
    assert last["loss"] < first["loss"]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_train_step_with_real_views_and_scheduler():
    model = build_simclr(3, 16, (1,), (8,), proj_hidden=16, proj_dim=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    images = torch.randint(0, 256, (8, 3, 20, 20), dtype=torch.uint8)
    metrics = train_step(model, SimCLRViews(16, 3), images, NTXentLoss(0.5), optimizer, scheduler)
    assert torch.isfinite(torch.tensor(metrics["loss"]))
    assert metrics["lr"] == 0.1 and optimizer.param_groups[0]["lr"] == 0.05


# --- momentum_train_step (MoCo) ----------------------------------------------------------------

def _noisy_views(x):
    x = x.float() / 255
    return x + 0.05 * torch.randn_like(x), x + 0.05 * torch.randn_like(x)


def _moco_setup(momentum=0.9, queue_size=32, seed=0):
    torch.manual_seed(seed)
    model = build_simclr(1, 8, (1,), (8,), proj_hidden=16, proj_dim=8)
    return model, MomentumEncoder(model, momentum=momentum), MoCoLoss(0.2, queue_size=queue_size, dim=8)


def test_momentum_train_step_trains_queries_moves_keys_by_ema_and_fills_the_queue():
    model, key_model, loss_fn = _moco_setup(momentum=0.9)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    images = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
    query_before = [p.detach().clone() for p in model.parameters()]
    key_before = [p.detach().clone() for p in key_model.parameters()]
    metrics = momentum_train_step(model, key_model, _noisy_views, images, loss_fn, optimizer)
    assert set(metrics) == {"loss", "lr"} and metrics["lr"] == 0.1
    assert math.isfinite(metrics["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(query_before, model.parameters(), strict=True))
    for before, key, query in zip(key_before, key_model.parameters(), model.parameters(), strict=True):
        assert torch.allclose(key, 0.9 * before + 0.1 * query.detach(), atol=1e-7)
        assert not key.requires_grad
    assert loss_fn.queue_ptr.item() == 8
    momentum_train_step(model, key_model, _noisy_views, images, loss_fn, optimizer)
    assert loss_fn.queue_ptr.item() == 16


def test_momentum_train_step_unwraps_a_wrapped_model_for_the_ema():
    # DataParallel on CPU stands in for DDP: `.module` is the bare model, parameters are "module.*".
    model, key_model, loss_fn = _moco_setup(momentum=0.5)
    wrapped = torch.nn.DataParallel(model)
    optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    key_before = [p.detach().clone() for p in key_model.parameters()]
    images = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
    metrics = momentum_train_step(wrapped, key_model, _noisy_views, images, loss_fn, optimizer, scheduler,
                                  autocast_dtype=torch.bfloat16)
    assert math.isfinite(metrics["loss"]) and metrics["lr"] == 0.1 and optimizer.param_groups[0]["lr"] == 0.05
    for before, key, query in zip(key_before, key_model.parameters(), model.parameters(), strict=True):
        assert torch.allclose(key, 0.5 * before + 0.5 * query.detach(), atol=1e-7)


def test_momentum_train_step_reduces_the_loss_on_a_fixed_batch():
    # queue_size = batch: from step 1 on the queue holds exactly the previous step's keys. Step 0
    # scores against the random initial queue (easy negatives), so it is not the baseline; the
    # stale key of each image stays among its negatives, so the loss floor is about log 2.
    model, key_model, loss_fn = _moco_setup(momentum=0.9, queue_size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    images = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    losses = [momentum_train_step(model, key_model, _noisy_views, images, loss_fn, optimizer)["loss"]
              for _ in range(30)]
    assert all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-5:]) / 5 < 0.75 * losses[1], losses


# Two real processes, the Ray worker's setting: DDP-wrapped query encoder, one key encoder and
# one queue per rank. The queues (keys gathered across ranks) and key weights must stay identical.
WORLD = 2


def _ddp_worker(rank: int) -> dict:
    model, key_model, loss_fn = _moco_setup(momentum=0.9, queue_size=20)  # same seed: same weights
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    torch.manual_seed(100 + rank)  # each rank its own images and augmentations
    for _ in range(3):
        images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
        loss = momentum_train_step(ddp, key_model, _noisy_views, images, loss_fn, optimizer)["loss"]
    return {
        "loss": loss,
        "queue": loss_fn.queue.clone(),
        "ptr": loss_fn.queue_ptr.item(),
        "keys": [p.detach().clone() for p in key_model.parameters()],
        "queries": [p.detach().clone() for p in model.parameters()],
    }


def test_momentum_train_step_under_ddp_keeps_queues_and_key_encoders_in_sync(run_distributed):
    results = run_distributed(_ddp_worker, WORLD)
    first, second = results[0], results[1]
    assert math.isfinite(first["loss"]) and math.isfinite(second["loss"])
    assert first["ptr"] == second["ptr"] == (3 * WORLD * 4) % 20  # every rank enqueued the global keys
    assert torch.equal(first["queue"], second["queue"])
    for a, b in zip(first["queries"] + first["keys"], second["queries"] + second["keys"], strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    _, untrained_key, _ = _moco_setup(momentum=0.9, queue_size=20)
    assert any(not torch.equal(a, b) for a, b in zip(first["keys"], untrained_key.parameters(), strict=True))
