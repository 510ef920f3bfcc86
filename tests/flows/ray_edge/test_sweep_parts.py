"""The parts of a sweep that need no cluster: a space's ranges as Ray Tune samples them, a
trial's config, and how the best trial is chosen."""

from __future__ import annotations

import random

import pytest

from cl_core.config import ConfigError, load_config
from cl_core.config.sweep_space import build_space
from flows.ray_edge.sweep import SweepPlan, TrialOutcome, param_space, trial_config
from flows.sweep_flow import best_trial


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    config = load_config(None, {"train.epochs": 4})
    space = build_space({"params": {"train.lr": {"loguniform": [1e-4, 1e-2]}, "loss.temperature": {"choice": [0.1, 0.5]},
                                    "model.proj_dim": {"randint": [16, 33]}, "views.jitter_p": {"uniform": [0.2, 0.8]}}},
                        config, "space.yaml")
    return SweepPlan(config.model_dump(mode="json"), space, "datasets", str(tmp_path_factory.mktemp("sweep")),
                     "sqlite:///x.db", "0", "run", "val.knn_top1", "max")


def test_each_range_samples_inside_its_bounds(plan):
    ranges = param_space(plan.space)["overrides"]
    random.seed(0)
    samples = [{key: domain.sample() for key, domain in ranges.items()} for _ in range(200)]
    assert all(1e-4 <= s["train.lr"] <= 1e-2 for s in samples)
    assert {s["loss.temperature"] for s in samples} == {0.1, 0.5}
    assert {s["model.proj_dim"] for s in samples} <= set(range(16, 33)) and max(s["model.proj_dim"] for s in samples) == 32
    assert all(0.2 <= s["views.jitter_p"] <= 0.8 for s in samples)


def test_a_trial_config_is_the_sweeps_with_its_values_and_recovers_from_a_lost_worker(plan):
    config = trial_config(plan, {"train.lr": 0.003, "model.proj_dim": 20})
    assert (config.train.lr, config.model.proj_dim, config.train.epochs) == (0.003, 20, 4)
    assert config.train.max_failures == 1  # a sweep's trial restarts its worker group once at least
    assert plan.column == "eval.val.knn_top1"
    with pytest.raises(ConfigError, match="a trial with"):
        trial_config(plan, {"model.proj_dim": 0})


def _trial(trial_id: str, value: float | None, epochs: int = 4, error: str | None = None) -> TrialOutcome:
    return TrialOutcome(trial_id, {}, epochs, value, epochs < 4, error, f"/ckpt/{trial_id}", 1.0, {}, f"run-{trial_id}",
                        epochs)


def test_the_best_trial_is_the_best_last_value_of_a_trial_that_did_not_fail():
    trials = [_trial("a", 0.90), _trial("b", 0.95, epochs=2), _trial("c", 0.99, error="RuntimeError: x"),
              _trial("d", None), _trial("e", float("nan"))]
    assert best_trial(trials, "max").trial_id == "b"
    assert best_trial(trials, "min").trial_id == "a"
    assert best_trial([_trial("a", 0.9), _trial("b", 0.9, epochs=2)], "max").trial_id == "b"  # ties: fewer epochs
    with pytest.raises(RuntimeError, match="no trial finished with a validation score .*c: RuntimeError: x"):
        best_trial([_trial("c", 0.99, error="RuntimeError: x"), _trial("d", None)], "max")
