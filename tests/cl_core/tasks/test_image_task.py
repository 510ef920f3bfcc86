"""image.py: an ImageTask on a real (small) digits dataset, stepped without Ray."""

from __future__ import annotations

import math

import pytest
import torch

from cl_core.config import build_config
from cl_core.datasets import DatasetStore
from cl_core.models.spec import ImageModelSpec, model_spec_from_dict
from cl_core.tasks import build_task, warmup_cosine
from cl_core.tasks.image import ImageTask, load_shard

CPU = torch.device("cpu")


def _config(loss: dict):
    return build_config({
        "model": {"depths": [1], "widths": [8], "proj_hidden": 16, "proj_dim": 8},
        "loss": loss,
        "train": {"batch_size": 16, "workers": 2, "lr": 1e-2, "seed": 3},
    })


def _step(task, rows: torch.Tensor) -> dict[str, float]:
    """One step as the Ray loop takes it, on the bare model (one process: no DDP)."""
    task.attach(task.model)
    parameters = [*task.model.parameters(), *task.loss_fn.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=task.cfg.train.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(10, 0))
    return task.step(rows, optimizer, scheduler)


@pytest.mark.parametrize("loss", [{"name": "ntxent"}, {"name": "supcon"}, {"name": "moco", "queue_size": 32}])
def test_one_step_gives_a_finite_loss_and_moves_every_encoder_weight_group(digits_params, loss):
    torch.manual_seed(0)
    task = build_task(_config(loss), digits_params, rank=1, world=2, device=CPU)
    assert isinstance(task, ImageTask)
    before = {name: value.clone() for name, value in task.model.state_dict().items() if value.is_floating_point()}
    metrics = _step(task, torch.arange(16))
    assert math.isfinite(metrics["loss"]) and metrics["lr"] == pytest.approx(1e-2)
    after = task.model.state_dict()
    moved = [name for name, value in before.items() if not torch.equal(value, after[name])]
    assert any(name.startswith("embedder.") for name in moved) and any(name.startswith("head.") for name in moved)


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
