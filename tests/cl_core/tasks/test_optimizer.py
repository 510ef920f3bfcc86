"""optimizer.py: the head learns at train.lr, the backbone at train.lr * train.backbone_lr_mult,
frozen parameters not at all, and the schedule scales both groups alike."""

from __future__ import annotations

import pytest
import torch

from cl_core.config import build_config
from cl_core.losses.two_view import MOMENTUM_OBJECTIVES, TWO_VIEW_OBJECTIVES
from cl_core.tasks import build_optimizer, build_task, warmup_cosine

CPU = torch.device("cpu")


def _task(digits_params, mult: float, loss: dict | None = None, **model):
    cfg = build_config({
        "data": {"image_size": 32},
        "model": {"backbone": "efficientnet-lite0", "proj_hidden": 32, "proj_dim": 16, **model},
        "loss": loss or {"name": "ntxent"},
        "train": {"batch_size": 8, "workers": 2, "lr": 1e-3, "backbone_lr_mult": mult},
    })
    return cfg, build_task(cfg, digits_params, rank=0, world=2, device=CPU)


def test_head_and_backbone_groups_take_their_learning_rates_and_leave_frozen_weights_out(digits_params):
    cfg, task = _task(digits_params, 0.1, freeze_stages=2)
    optimizer = build_optimizer(task.model, task.loss_fn, task.backbone, cfg.train)
    head, backbone = optimizer.param_groups
    assert (head["name"], head["lr"]) == ("head", pytest.approx(1e-3))
    assert (backbone["name"], backbone["lr"]) == ("backbone", pytest.approx(1e-4))
    in_backbone = {id(p) for p in task.model.embedder.encoder.parameters()}
    assert all(id(p) in in_backbone for p in backbone["params"])
    assert {id(p) for p in head["params"]} == {id(p) for p in task.model.head.parameters()}
    trainable = {id(p) for p in task.model.parameters() if p.requires_grad}
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == trainable
    assert trainable < {id(p) for p in task.model.parameters()}  # the frozen stem and stages are out
    torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(10, 2))  # sets the first step's rates
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([5e-4, 5e-5])


def test_a_multiplier_of_one_keeps_the_single_group_of_before(digits_params):
    cfg, task = _task(digits_params, 1.0)
    optimizer = build_optimizer(task.model, task.loss_fn, task.backbone, cfg.train)
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


# One objective per way a worker step trains (cl_core/training_step.py): two views without labels
# (SimCLR), two views with labels (SupCon), a momentum key encoder (MoCo; its queue holds whole
# batches). The other two-view objectives differ from these only in the loss, and each of them
# trains through Ray in tests/flows/ray_edge/test_objectives_train.py.
OBJECTIVES = [{"name": "ntxent"}, {"name": "supcon"}, {"name": "moco", "queue_size": 8}]


def test_the_objectives_cover_every_training_path():
    names = {loss["name"] for loss in OBJECTIVES}
    assert names & set(TWO_VIEW_OBJECTIVES) and names & set(MOMENTUM_OBJECTIVES)


@pytest.mark.parametrize("loss", OBJECTIVES, ids=lambda loss: loss["name"])
def test_a_worker_step_fine_tunes_the_pretrained_backbone_with_both_groups(digits_params, loss):
    """Digits (grayscale, 8x8) upsampled to 32 and replicated to RGB; one worker step moves the
    head and the unfrozen backbone, not the frozen stem."""
    cfg, task = _task(digits_params, 0.1, loss, freeze_stages=1)
    assert task.images.shape[1:] == (3, 32, 32) and task.spec.channels == 3
    task.attach(task.model)
    optimizer = build_optimizer(task.model, task.loss_fn, task.backbone, cfg.train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(10, 0))
    before = {name: p.clone() for name, p in task.model.named_parameters()}
    metrics = task.step(torch.arange(4), optimizer, scheduler)
    assert metrics["lr"] == pytest.approx(1e-3) and torch.isfinite(torch.tensor(metrics["loss"]))
    moved = {name for name, p in task.model.named_parameters() if not torch.equal(p, before[name])}
    assert "head.net.0.weight" in moved and "embedder.encoder.net._conv_head.weight" in moved
    assert "embedder.encoder.net._conv_stem.weight" not in moved
