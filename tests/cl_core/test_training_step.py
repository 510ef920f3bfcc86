import torch

from cl_core.losses import NTXentLoss
from cl_core.models import build_simclr
from cl_core.training_step import train_step
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
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_train_step_with_real_views_and_scheduler():
    model = build_simclr(3, 16, (1,), (8,), proj_hidden=16, proj_dim=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    images = torch.randint(0, 256, (8, 3, 20, 20), dtype=torch.uint8)
    metrics = train_step(model, SimCLRViews(16, 3), images, NTXentLoss(0.5), optimizer, scheduler)
    assert torch.isfinite(torch.tensor(metrics["loss"]))
    assert metrics["lr"] == 0.1 and optimizer.param_groups[0]["lr"] == 0.05
