"""The config of a recommender run (data.modality interactions): its defaults, the two-tower and
BPR-MF sections validated naming the field, and configs/ml100k.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from cl_core.config import INTERACTIONS_DEFAULTS, ConfigError, build_config, load_config
from cl_core.models.spec import TwoTowerModelSpec
from cl_core.models.two_tower import TwoTowerSizes

INTERACTIONS = {"data": {"modality": "interactions", "source": "ratings.csv", "name": "shop"}}


def test_interactions_get_the_recommender_defaults_for_what_the_config_leaves_out():
    cfg = build_config({**INTERACTIONS, "train": {"epochs": 3}})
    assert cfg.loss.name == "sampled_softmax" and cfg.loss.temperature == INTERACTIONS_DEFAULTS["loss"]["temperature"]
    assert cfg.train.epochs == 3 and cfg.train.batch_size == INTERACTIONS_DEFAULTS["train"]["batch_size"]
    assert cfg.model.two_tower.history_length == 20 and cfg.eval.mf.epochs == 40
    assert cfg.model_name == "shop-sampled_softmax"
    linear = build_config({**INTERACTIONS, "model": {"two_tower": {"hidden": [], "history_length": 3}}})
    spec = TwoTowerModelSpec.from_config(linear.model, TwoTowerSizes(4, 5))
    assert spec.hidden == () and spec.history_length == 3 and spec.build()


@pytest.mark.parametrize("override, field", [
    ({"loss": {"name": "ntxent"}}, r"loss.name 'ntxent' does not train interactions data; use one of \('sampled_softmax',\)"),
    ({"model": {"two_tower": {"hidden": [64, 0]}}}, r"model\.two_tower\.hidden"),
    ({"model": {"two_tower": {"hidden": "128"}}}, r"model\.two_tower\.hidden"),
    ({"model": {"two_tower": {"history_length": 0}}}, r"model\.two_tower\.history_length"),
    ({"model": {"two_tower": {"dropout": 1.0}}}, r"model\.two_tower\.dropout"),
    ({"model": {"two_tower": {"width": 3}}}, r"model\.two_tower\.width"),
    ({"eval": {"mf": {"lr": 0}}}, r"eval\.mf\.lr"),
])
def test_bad_recommender_settings_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field):
        build_config({**INTERACTIONS, **override})


def test_the_ml100k_config_trains_the_two_towers_on_the_wheels_movielens():
    cfg = load_config(Path(__file__).parents[2] / "configs" / "ml100k.yaml")
    assert (cfg.data.modality, cfg.data.source, cfg.loss.name) == ("interactions", "ml-100k", "sampled_softmax")
    assert cfg.model_name == "ml-100k-two-tower" and cfg.train.workers == 2
