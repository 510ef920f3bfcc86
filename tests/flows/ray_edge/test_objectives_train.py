"""The image objectives whose Ray Train worker loop does something across workers train through it on two workers
(one shared local Ray session, all fits at once), and their state travels in the checkpoint. Every image objective,
these included, takes a real worker step without Ray in tests/cl_core/tasks/test_image_task.py."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import ray
import torch

from cl_core.config import build_config
from cl_core.datasets import DatasetStore
from cl_core.losses.two_view import MOMENTUM_OBJECTIVES, TWO_VIEW_OBJECTIVES
from flows.ray_edge.cluster import ensure_ray
from flows.ray_edge.train_launch import TrainingOutcome, fit
from tests.cl_core.tasks.test_image_task import STEPPED_OBJECTIVES

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# The loop does something across workers for these: ids and labels gathered for masking and label positives (ntxent
# with mask_same_label, supcon), the learnable temperature's gradient averaged by a hook outside DDP (clip), MoCo's key
# encoder and queue beside DDP. Plain ntxent trains in the end-to-end test. The other objectives' gathered losses equal
# one process's in the two-process gloo tests (tests/cl_core/losses/test_two_view.py, test_distributed_losses.py), and
# the loop runs them exactly as these, so a step in-process proves them (each Ray fit costs ~30 s here).
OBJECTIVES = [
    {"name": "ntxent", "mask_same_label": True},
    {"name": "supcon"},
    {"name": "clip", "learnable_temperature": True},
    {"name": "moco", "queue_size": 64, "momentum": 0.9},
]
WORKERS = 2


def _name(loss: dict) -> str:
    return "-".join(str(v) for v in loss.values())


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, TrainingOutcome | BaseException]:
    """Each objective's fit, by `_name`, or the exception it raised (its own test re-raises it)."""
    root = tmp_path_factory.mktemp("objectives")
    store = DatasetStore(root / "datasets")
    store.ingest("digits", "digits", limit=200)
    dataset = store.resolve("digits")
    if ray.is_initialized():  # a Ray left by an earlier module may have too few CPUs for the fits at once
        ray.shutdown()
    # Each fit spends much of its time starting and stopping Ray processes; all at once overlap that. Ray gets
    # logical CPUs for every worker, so that no fit waits for another's placement group.
    ensure_ray(logical_cpus=len(OBJECTIVES) * WORKERS + 2)

    def train(loss: dict) -> TrainingOutcome:
        cfg = build_config({
            "data": {"name": "digits"},
            "model": {"depths": [1], "widths": [8], "proj_hidden": 16, "proj_dim": 8},
            "loss": loss,
            "train": {"epochs": 2, "batch_size": 32, "workers": WORKERS},
        })
        return fit(cfg, dataset, root / "datasets", root / "checkpoints", None, "", name=f"objective-{_name(loss)}")

    with ThreadPoolExecutor(len(OBJECTIVES)) as pool:
        futures = {_name(loss): pool.submit(train, loss) for loss in OBJECTIVES}
    yield {name: future.exception() or future.result() for name, future in futures.items()}
    ray.shutdown()


def test_the_list_covers_every_objective():
    # Every objective takes a worker step in-process; those whose loop works across workers are fit on Ray as well.
    every_objective = set(TWO_VIEW_OBJECTIVES) | set(MOMENTUM_OBJECTIVES)
    assert {loss["name"] for loss in STEPPED_OBJECTIVES} == every_objective
    assert {loss["name"] for loss in OBJECTIVES} <= every_objective


@pytest.mark.parametrize("loss", OBJECTIVES, ids=_name)
def test_objective_trains_through_the_ray_worker_loop(loss, outcomes):
    outcome = outcomes[_name(loss)]
    if isinstance(outcome, BaseException):
        raise outcome
    assert outcome.final_metrics["world_size"] == WORKERS
    assert outcome.final_metrics["epoch"] == 1
    assert math.isfinite(outcome.final_metrics["loss"])
    state = outcome.state
    assert state["epoch"] == 1 and "loss" in state
    # Every rank's RNG state lands in the one checkpoint folder, for an exact resume.
    assert {p.name for p in outcome.checkpoint_dir.glob("rng-rank*.pt")} == {f"rng-rank{rank}.pt" for rank in range(WORKERS)}
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
