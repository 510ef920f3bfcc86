"""Every image objective (the two-view ones and MoCo) trains through the Ray Train worker loop (one shared local Ray
session, three fits at a time), and its state travels in the checkpoint."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import ray
import torch

from cl_core.config import build_config
from cl_core.datasets import DatasetStore
from cl_core.losses.two_view import MOMENTUM_OBJECTIVES, TWO_VIEW_OBJECTIVES
from flows.ray_cluster import ensure_ray
from flows.train_launch import TrainingOutcome, fit

pytestmark = [pytest.mark.slow, pytest.mark.integration]

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
# Two workers where the loop itself does something across them: ids and labels gathered for masking and label
# positives, the learnable temperature's gradient averaged by a hook outside DDP, MoCo's key encoder and queue beside
# DDP. The others train on one worker (a second costs ~11 s of CPU per fit); their gathered losses equal one process's
# in the two-process gloo tests (tests/cl_core/losses/test_two_view.py, test_distributed_losses.py).
TWO_WORKERS = {"ntxent", "supcon", "clip", "moco"}
# Each fit spends much of its time starting and stopping Ray processes, one at a time; three fits at once
# overlap that. Ray gets logical CPUs for all their workers, so that no fit waits for another's placement group.
AT_ONCE = 3


def _name(loss: dict) -> str:
    return "-".join(str(v) for v in loss.values())


def _workers(loss: dict) -> int:
    return 2 if loss["name"] in TWO_WORKERS else 1


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, TrainingOutcome | BaseException]:
    """Each objective's fit, by `_name`, or the exception it raised (its own test re-raises it)."""
    root = tmp_path_factory.mktemp("objectives")
    store = DatasetStore(root / "datasets")
    store.ingest("digits", "digits", limit=200)
    dataset = store.resolve("digits")
    if ray.is_initialized():  # a Ray left by an earlier module may have too few CPUs for the fits at once
        ray.shutdown()
    ensure_ray(logical_cpus=AT_ONCE * 2 + 2)

    def train(loss: dict) -> TrainingOutcome:
        cfg = build_config({
            "data": {"name": "digits"},
            "model": {"depths": [1], "widths": [8], "proj_hidden": 16, "proj_dim": 8},
            "loss": loss,
            "train": {"epochs": 2, "batch_size": 32, "workers": _workers(loss)},
        })
        return fit(cfg, dataset, root / "datasets", root / "checkpoints", None, "", name=f"objective-{_name(loss)}")

    with ThreadPoolExecutor(AT_ONCE) as pool:
        futures = {_name(loss): pool.submit(train, loss) for loss in OBJECTIVES}
    yield {name: future.exception() or future.result() for name, future in futures.items()}
    ray.shutdown()


def test_the_list_covers_every_objective():
    assert {loss["name"] for loss in OBJECTIVES} == set(TWO_VIEW_OBJECTIVES) | set(MOMENTUM_OBJECTIVES)
    assert TWO_WORKERS <= {loss["name"] for loss in OBJECTIVES}


@pytest.mark.parametrize("loss", OBJECTIVES, ids=_name)
def test_objective_trains_through_the_ray_worker_loop(loss, outcomes):
    outcome = outcomes[_name(loss)]
    if isinstance(outcome, BaseException):
        raise outcome
    workers = _workers(loss)
    assert outcome.final_metrics["world_size"] == workers
    assert outcome.final_metrics["epoch"] == 1
    assert math.isfinite(outcome.final_metrics["loss"])
    state = outcome.state
    assert state["epoch"] == 1 and "loss" in state
    # Every rank's RNG state lands in the one checkpoint folder, for an exact resume.
    assert {p.name for p in outcome.checkpoint_dir.glob("rng-rank*.pt")} == {f"rng-rank{rank}.pt" for rank in range(workers)}
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
