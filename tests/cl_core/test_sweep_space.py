"""A sweep's space file, checked against the typed config before anything starts: every shipped
space fits its config; an unknown key, a section a sweep may not vary, a bound the field refuses,
a range of the wrong kind each fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cl_core.config import ConfigError, load_config
from cl_core.config.sweep_space import NOT_SWEPT, SweepSpace, build_space, describe, load_space

REPO = Path(__file__).resolve().parents[2]
SPACES = sorted((REPO / "configs" / "spaces").glob("*.yaml"))


@pytest.fixture(scope="module")
def digits():
    return load_config(REPO / "configs" / "digits.yaml")


def _space(config, **raw):
    return build_space(raw, config, "space.yaml")


@pytest.mark.parametrize("path", SPACES, ids=lambda path: path.stem)
def test_each_shipped_space_fits_the_config_of_its_name(path):
    config = load_config(REPO / "configs" / f"{path.stem}.yaml")
    space = load_space(path, config)
    budgeted = space.budgeted(config)
    assert space.scheduler.name == "asha" and space.scheduler.grace_epochs < budgeted.train.epochs
    assert space.params and space.trials >= 4


def test_one_space_per_shipped_config_family():
    assert {path.stem for path in SPACES} == {"digits", "text-stsb", "ml100k"}


def test_ranges_read_as_the_file_writes_them_and_round_trip(digits):
    space = _space(digits, trials=4, params={
        "train.lr": {"loguniform": [1e-4, 1e-2]}, "loss.temperature": {"choice": [0.1, 0.2]},
        "model.proj_dim": {"randint": [32, 129]}, "views.jitter_strength": {"uniform": [0.2, 0.8]}})
    assert describe(space) == {"train.lr": "loguniform(0.0001, 0.01)", "loss.temperature": "choice(0.1, 0.2)",
                               "model.proj_dim": "randint(32, 129)", "views.jitter_strength": "uniform(0.2, 0.8)"}
    assert SweepSpace.model_validate(space.as_file()) == space  # what a resumed sweep reads back
    assert space.max_concurrent == 1 and space.scheduler.reduction_factor == 2 and space.epochs is None


def test_epochs_and_the_cli_overrides_replace_the_files_values(digits):
    space = build_space({"epochs": 10, "trials": 8, "params": {"train.lr": {"choice": [0.01]}}}, digits, "s.yaml",
                        {"epochs": 6, "trials": 3, "max_concurrent": None})
    assert (space.epochs, space.trials, space.max_concurrent) == (6, 3, 1)
    assert space.budgeted(digits).train.epochs == 6 and digits.train.epochs == 30


@pytest.mark.parametrize("params, named", [
    ({"train.lrr": {"uniform": [0.1, 1]}}, "train.lrr: train has no field 'lrr' (fields: epochs, batch_size, lr"),
    ({"optim.lr": {"uniform": [0.1, 1]}}, "optim.lr: unknown section 'optim'"),
    ({"train": {"uniform": [0.1, 1]}}, "train is a section; name one of its fields"),
    ({"train.lr.x": {"uniform": [0.1, 1]}}, "train.lr.x: train.lr has no field 'x'"),
    ({"data.image_size": {"choice": [8, 16]}}, "data.image_size cannot be swept: a sweep varies model, views, loss, train"),
    ({"registry.model_name": {"choice": ["a"]}}, "registry.model_name cannot be swept"),
    ({"train.epochs": {"choice": [3]}}, "train.epochs cannot be swept: it is the scheduler's budget"),
    ({"train.lr": {"uniform": [-0.1, 0.01]}},
     "train.lr: -0.1 of uniform(-0.1, 0.01) is not a valid value: train.lr: Input should be greater than 0"),
    ({"loss.temperature": {"choice": [0.1, 0.0]}}, "loss.temperature: 0.0 of choice(0.1, 0.0) is not a valid value"),
    ({"train.batch_size": {"choice": [128, 255]}}, "batch_size 255 must be divisible by workers 2"),
    ({"views.flip_p": {"uniform": [0.5, 1.5]}}, "views.flip_p: 1.5 of uniform(0.5, 1.5) is not a valid value"),
    ({"model.proj_dim": {"randint": [0, 64]}}, "model.proj_dim: 0 of randint(0, 64) is not a valid value"),
    ({"model.proj_dim": {"uniform": [16, 64]}}, "model.proj_dim holds integers: use randint or choice, not uniform"),
    ({"train.lr": {"loguniform": [0, 0.1]}}, "train.lr: loguniform needs 0 < low, got 0"),
    ({"train.lr": {"uniform": [0.1, 0.01]}}, "train.lr: uniform needs low < high, got [0.1, 0.01]"),
    ({"train.lr": {"uniform": [0.1]}}, "train.lr: uniform takes [low, high], got [0.1]"),
    ({"train.lr": {"normal": [0, 1]}}, "train.lr: unknown range 'normal'; use one of choice, uniform, loguniform, randint"),
    ({"train.lr": 0.01}, "train.lr: give one of choice, uniform, loguniform, randint"),
    ({"model.proj_dim": {"randint": [16.5, 64]}}, "model.proj_dim: randint bounds must be integers"),
    ({}, "params: name at least one config key and its range"),
])
def test_a_bad_key_or_range_is_refused_naming_it(digits, params, named):
    with pytest.raises(ConfigError) as raised:
        _space(digits, params=params)
    assert "invalid sweep space (space.yaml)" in str(raised.value)
    assert named in str(raised.value)


def test_every_key_a_sweep_leaves_alone_says_why(digits):
    for key, reason in NOT_SWEPT.items():
        with pytest.raises(ConfigError, match=f"{key} cannot be swept"):
            _space(digits, params={key: {"choice": [1]}})
        assert reason


def test_the_budget_and_scheduler_are_checked(digits):
    with pytest.raises(ConfigError, match="grace_epochs 4 leaves ASHA no epoch to stop a trial at: each trial trains 4"):
        _space(digits, epochs=4, scheduler={"grace_epochs": 4}, params={"train.lr": {"choice": [0.01]}})
    _space(digits, epochs=4, scheduler={"name": "none", "grace_epochs": 4}, params={"train.lr": {"choice": [0.01]}})
    for bad, field in (({"trials": 0}, "trials"), ({"max_concurrent": 0}, "max_concurrent"),
                       ({"scheduler": {"reduction_factor": 1}}, "scheduler.reduction_factor"),
                       ({"scheduler": {"name": "pbt"}}, "scheduler.name"), ({"searcher": "optuna"}, "searcher")):
        with pytest.raises(ConfigError, match=field):
            _space(digits, params={"train.lr": {"choice": [0.01]}}, **bad)


def test_a_missing_or_unreadable_space_file_is_named(tmp_path, digits):
    with pytest.raises(ConfigError, match="space file not found"):
        load_space(tmp_path / "none.yaml", digits)
    (tmp_path / "list.yaml").write_text("- train.lr\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_space(tmp_path / "list.yaml", digits)
    (tmp_path / "broken.yaml").write_text("params: {train.lr: [\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_space(tmp_path / "broken.yaml", digits)
