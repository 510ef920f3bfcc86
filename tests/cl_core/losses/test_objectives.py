"""The objectives table is the one source of loss names and options: every row builds, and the
config, the two-view adapter and the builder accept and refuse options exactly as it says."""

import pytest
import torch
from torch import nn

from cl_core.config import ConfigError, LossConfig, build_config
from cl_core.losses import LOSSES, MoCoLoss, MultipleNegativesRankingLoss, build_objective
from cl_core.losses.contrastive import TwoViewContrastiveLoss
from cl_core.losses.objectives import CARRIED, LEFT_OUT, OBJECTIVES, objective_names
from cl_core.losses.triplet import TwoViewTripletLoss
from cl_core.losses.two_view import TwoViewObjective

# A value that is not how the config leaves each option out, inside every objective's range.
SET_VALUES = {
    "mask_same_label": True, "use_labels": True, "learnable_temperature": True, "margin": 0.3,
    "distance": "euclidean", "mining": "batch_hard", "positive_min_score": 3.0, "hard_negatives": 1,
}
MODALITY_CASES = [(name, modality) for name, row in OBJECTIVES.items() for modality in row.trains]


def _config(name, modality, **options):
    return build_config({"data": {"modality": modality}, "loss": {"name": name, **options}})


def test_the_config_names_and_leaves_out_exactly_the_table_options():
    fields = LossConfig.model_fields
    assert set(fields) == {"name"} | set(LEFT_OUT) | set(CARRIED)
    assert {option: fields[option].default for option in LEFT_OUT} == LEFT_OUT
    assert objective_names() == tuple(OBJECTIVES)
    assert set(LOSSES) == {name for name, row in OBJECTIVES.items() if row.loss is not None}


@pytest.mark.parametrize("name,modality", MODALITY_CASES)
def test_every_row_builds_from_the_default_config_of_its_modality(name, modality):
    cfg = _config(name, modality)
    module = build_objective(cfg.loss, modality, proj_dim=8, gather_distributed=False)
    assert isinstance(module, nn.Module)
    if OBJECTIVES[name].trains[modality] == "two_view":
        assert isinstance(module, TwoViewObjective) and module.loss.gather_distributed is False


@pytest.mark.parametrize("name,modality", MODALITY_CASES)
@pytest.mark.parametrize("option", sorted(SET_VALUES))
def test_config_accepts_an_option_exactly_where_the_table_reads_it(name, modality, option):
    row = OBJECTIVES[name]
    reads = row.reads(option, modality)
    if reads:
        assert getattr(_config(name, modality, **{option: SET_VALUES[option]}).loss, option) == SET_VALUES[option]
    else:
        with pytest.raises(ConfigError, match=option):
            _config(name, modality, **{option: SET_VALUES[option]})
    if modality == "image" and row.trains[modality] == "two_view":
        # The adapter refuses and accepts the same.
        kwargs = {option: SET_VALUES[option]}
        if reads:
            TwoViewObjective(name, 0.2, **kwargs)
        else:
            with pytest.raises(ValueError, match=option):
                TwoViewObjective(name, 0.2, **kwargs)


def test_a_name_trains_only_the_modalities_of_its_row():
    for name, row in OBJECTIVES.items():
        for modality in {"image", "text"} - set(row.trains):
            with pytest.raises(ConfigError, match="loss.name"):
                _config(name, modality)
            with pytest.raises(ValueError, match=f"does not train {modality} data"):
                build_objective({"name": name}, modality)


def test_triplet_margin_zero_is_accepted_by_the_config_and_the_loss_alike():
    cfg = build_config({"loss": {"name": "triplet", "margin": 0.0}})
    assert cfg.loss.margin == 0.0
    objective = build_objective(cfg.loss, "image")
    assert isinstance(objective.loss, TwoViewTripletLoss) and objective.loss.margin == 0.0
    assert TwoViewObjective("triplet", 0.2, margin=0.0).loss.margin == 0.0
    assert TwoViewTripletLoss(margin=0.0).margin == 0.0
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.isfinite(objective(z1, z2))


def test_contrastive_margin_zero_is_refused_by_the_config_and_the_loss_alike():
    with pytest.raises(ConfigError, match="margin of contrastive must be > 0"):
        build_config({"loss": {"name": "contrastive", "margin": 0.0}})
    with pytest.raises(ValueError, match="margin of contrastive must be > 0"):
        TwoViewObjective("contrastive", 0.2, margin=0.0)
    with pytest.raises(ValueError, match="margin must be > 0"):
        TwoViewContrastiveLoss(margin=0.0)
    with pytest.raises(ValueError, match="margin must be > 0"):
        LOSSES["contrastive"](margin=0.0)


def test_negative_triplet_margin_is_refused_with_the_field_named():
    with pytest.raises(ConfigError, match="margin of triplet must be >= 0"):
        build_config({"loss": {"name": "triplet", "margin": -0.1}})


def test_defaults_of_the_margin_losses_come_from_their_rows():
    for name in ("triplet", "contrastive"):
        loss = build_objective({"name": name, "temperature": 0.2}, "image").loss
        row = OBJECTIVES[name].options
        assert (loss.margin, loss.distance) == (row["margin"].default, row["distance"].default)
    triplet = build_objective({"name": "triplet", "temperature": 0.2}, "image")
    assert triplet.loss.mining == OBJECTIVES["triplet"].options["mining"].default


def test_the_builder_gives_each_training_form_its_module():
    moco = build_objective({"name": "moco", "temperature": 0.1, "queue_size": 16}, "image", proj_dim=8)
    assert isinstance(moco, MoCoLoss) and (moco.queue_size, moco.dim, moco.temperature) == (16, 8, 0.1)
    text = build_config({"data": {"modality": "text"}, "loss": {"name": "mnrl", "symmetric": False}}).loss
    mnrl = build_objective(text, "text")
    assert isinstance(mnrl, MultipleNegativesRankingLoss) and mnrl.symmetric is False and mnrl.scale == 1 / 0.05
    simcse = build_objective({"name": "simcse", "temperature": 0.05, "symmetric": True}, "text")
    assert isinstance(simcse, MultipleNegativesRankingLoss) and simcse.symmetric is False  # one direction
    assert build_objective({"name": "mnrl", "temperature": 0.05}, "image").loss.symmetric is True


def test_labels_are_read_where_the_table_says():
    assert build_config({"loss": {"name": "supcon"}}).loss.uses_labels
    assert TwoViewObjective("supcon", 0.1).uses_labels
    for name in objective_names("image", "two_view"):
        row = OBJECTIVES[name]
        masks = row.reads("mask_same_label", "image")
        assert build_config({"loss": {"name": name, "mask_same_label": masks}}).loss.uses_labels == (row.labels or masks)


def test_the_docs_say_which_objectives_chunk_as_the_table_does():
    """docs/objectives.md's `grad_cache_chunk` column is the table's EMBEDDINGS_ONLY_FORMS."""
    from pathlib import Path

    from cl_core.losses.objectives import EMBEDDINGS_ONLY_FORMS, EMBEDDINGS_ONLY_FORMS_NOT

    docs = (Path(__file__).parents[3] / "docs" / "objectives.md").read_text(encoding="utf-8")
    rows = [line for line in docs.splitlines() if line.startswith("| `")]
    said = {row.split("`")[1]: row.rstrip(" |").rsplit("| ", 1)[1] for row in rows}
    assert set(said) == set(OBJECTIVES)
    for name, objective in OBJECTIVES.items():
        refused = [form for form in objective.forms if form not in EMBEDDINGS_ONLY_FORMS]
        assert said[name].startswith("no" if refused else "yes"), name
        assert all(form in EMBEDDINGS_ONLY_FORMS_NOT for form in refused)
