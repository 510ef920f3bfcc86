"""image.py: an ImageTask on a real (small) digits dataset, stepped without Ray."""

from __future__ import annotations

import math

import pytest
import torch

from cl_core.config import build_config
from cl_core.datasets import DatasetStore
from cl_core.models.spec import ImageModelSpec, model_spec_from_dict
from cl_core.tasks import build_optimizer, build_task, warmup_cosine
from cl_core.tasks.image import ImageTask, load_shard

CPU = torch.device("cpu")
# Every image objective, with the options its Ray fit used to exercise. Those whose Ray worker loop does something
# across workers are also fit on Ray (tests/flows/ray_edge/test_objectives_train.py); a step here proves the rest train.
STEPPED_OBJECTIVES = [
    {"name": "ntxent", "mask_same_label": True},
    {"name": "dcl"},
    {"name": "supcon"},
    {"name": "mnrl"},
    {"name": "clip", "learnable_temperature": True},
    {"name": "infonce"},
    {"name": "triplet", "mining": "batch_hard", "distance": "euclidean"},
    {"name": "contrastive", "use_labels": True, "margin": 0.5},
    {"name": "moco", "queue_size": 32, "momentum": 0.9},
]


def _config(loss: dict):
    return build_config({
        "model": {"depths": [1], "widths": [8], "proj_hidden": 16, "proj_dim": 8},
        "loss": loss,
        "train": {"batch_size": 16, "workers": 2, "lr": 1e-2, "seed": 3},
    })


def _step(task, rows: torch.Tensor) -> dict[str, float]:
    """One step as the Ray loop takes it (its optimizer and schedule), on the bare model (one process: no DDP)."""
    task.attach(task.model)
    optimizer = build_optimizer(task.model, task.loss_fn, task.backbone, task.cfg.train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(10, 0))
    return task.step(rows, optimizer, scheduler)


def _name(loss: dict) -> str:
    return "-".join(str(v) for v in loss.values())


@pytest.mark.parametrize("loss", STEPPED_OBJECTIVES, ids=_name)
def test_one_step_gives_a_finite_loss_and_moves_every_encoder_weight_group(digits_params, loss):
    torch.manual_seed(0)
    task = build_task(_config(loss), digits_params, rank=1, world=2, device=CPU)
    assert isinstance(task, ImageTask)
    before = {name: value.clone() for name, value in task.model.state_dict().items() if value.is_floating_point()}
    loss_before = {name: value.clone() for name, value in task.loss_fn.state_dict().items()}
    metrics = _step(task, torch.arange(16))
    assert math.isfinite(metrics["loss"]) and metrics["lr"] == pytest.approx(1e-2)
    after = task.model.state_dict()
    moved = [name for name, value in before.items() if not torch.equal(value, after[name])]
    assert any(name.startswith("embedder.") for name in moved) and any(name.startswith("head.") for name in moved)
    if loss.get("learnable_temperature"):
        assert any(not torch.equal(value, task.loss_fn.state_dict()[name]) for name, value in loss_before.items())
    # What the checkpoint carries for the objective loads (strictly) into a fresh worker's task, as a resume does.
    resumed = build_task(_config(loss), digits_params, rank=1, world=2, device=CPU)
    resumed.attach(resumed.model)
    resumed.loss_fn.load_state_dict(task.loss_fn.state_dict())
    resumed.load_extra_state(task.extra_state())


def test_the_worker_holds_its_shard_of_the_train_split(digits_params):
    cfg = _config({"name": "ntxent"})
    task = ImageTask(cfg, digits_params, rank=0, world=2, device=CPU)
    images, labels = load_shard(
        digits_params["dataset_root"], "digits", digits_params["dataset_version"], 0, 2, cfg.train.seed, 8
    )
    assert task.num_rows == images.shape[0] == labels.shape[0]
    assert images.dtype == torch.uint8 and images.shape[1:] == (1, 8, 8)
    train_rows = DatasetStore(digits_params["dataset_root"]).resolve("digits").num_rows("train")
    assert task.num_rows == train_rows // 2
    torch.testing.assert_close(task.images, images)


def test_the_spec_describes_the_trained_model_as_the_registry_reads_it(digits_params):
    task = ImageTask(_config({"name": "ntxent"}), digits_params, rank=0, world=2, device=CPU)
    assert task.spec == ImageModelSpec(channels=1, image_size=8, depths=(1,), widths=(8,), proj_hidden=16, proj_dim=8)
    meta = task.spec.to_dict()
    assert meta == {"modality": "image", "channels": 1, "image_size": 8, "depths": [1], "widths": [8],
                    "stem_stride": 1, "proj_hidden": 16, "proj_dim": 8}
    assert model_spec_from_dict(meta) == task.spec
    assert set(task.spec.build().state_dict()) == {key[len("embedder."):] for key in task.model.state_dict()
                                                   if key.startswith("embedder.")}
