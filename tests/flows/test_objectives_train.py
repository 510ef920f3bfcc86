"""Every image objective (the two-view ones and MoCo) trains through the Ray Train worker loop (2 workers, one shared
local Ray session), and its state travels in the checkpoint."""

from __future__ import annotations

import math

import pytest
import ray
import torch

from cl_core.config import build_config
from cl_core.datasets import DatasetStore
from cl_core.losses.two_view import MOMENTUM_OBJECTIVES, TWO_VIEW_OBJECTIVES
from flows.train_launch import fit

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("objectives")
    store = DatasetStore(root / "datasets")
    store.ingest("digits", "digits", limit=200)
    yield root, store.resolve("digits")
    if ray.is_initialized():
        ray.shutdown()


# Plain ntxent trains in the end-to-end test; each Ray fit costs ~30 s here, so options ride along.
OBJECTIVES = [
    {"name": "ntxent", "mask_same_label": True},
    {"name": "dcl"},
    {"name": "supcon"},
    {"name": "mnrl"},
    {"name": "clip", "learnable_temperature": True},
    {"name": "infonce"},
    {"name": "triplet", "mining": "batch_hard", "distance": "euclidean"},
    {"name": "contrastive", "use_labels": True, "margin": 0.5},
    {"name": "moco", "queue_size": 64, "momentum": 0.9},
]


def test_the_list_covers_every_objective():
    assert {loss["name"] for loss in OBJECTIVES} == set(TWO_VIEW_OBJECTIVES) | set(MOMENTUM_OBJECTIVES)


@pytest.mark.parametrize("loss", OBJECTIVES, ids=lambda loss: "-".join(str(v) for v in loss.values()))
def test_objective_trains_on_two_workers(loss, digits):
    root, dataset = digits
    cfg = build_config({
        "data": {"name": "digits"},
        "model": {"depths": [1], "widths": [8], "proj_hidden": 16, "proj_dim": 8},
        "loss": loss,
        "train": {"epochs": 2, "batch_size": 32, "workers": 2},
    })
    run_name = f"objective-{'-'.join(map(str, loss.values()))}"
    outcome = fit(cfg, dataset, root / "datasets", root / "checkpoints", None, "", name=run_name)
    assert outcome.final_metrics["world_size"] == 2
    assert outcome.final_metrics["epoch"] == 1
    assert math.isfinite(outcome.final_metrics["loss"])
    state = outcome.state
    assert state["epoch"] == 1 and "loss" in state
    # Every rank's RNG state lands in the one checkpoint folder, for an exact resume.
    assert {p.name for p in outcome.checkpoint_dir.glob("rng-rank*.pt")} == {"rng-rank0.pt", "rng-rank1.pt"}
    if loss.get("learnable_temperature"):
        (scale,) = state["loss"].values()
        assert not torch.equal(scale, torch.tensor(math.log(1 / 0.07)).to(scale.dtype))  # it was trained
    if loss["name"] == "moco":
        # The queue (a loss buffer) and the key encoder travel in the checkpoint for an exact resume.
        steps = outcome.final_metrics["steps"]
        assert int(state["loss"]["queue_ptr"]) == (steps * 32) % 64
        key_weights = state["extra"]["key_model"]
        online = {k: v for k, v in state["model"].items()}
        assert key_weights.keys() == {f"target.{k}" for k in online}
        assert any(not torch.equal(key_weights[f"target.{k}"], v) for k, v in online.items() if v.is_floating_point())
