"""efficientnet.py: the pretrained EfficientNet-Lite0 backbone: real weights from the installed
package, its normalisation, 1280-d pooled features, and the fine-tuning controls (frozen stages
and BatchNorm statistics) through a real training step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cl_core.config import LossConfig
from cl_core.losses import build_objective
from cl_core.models.backbones import get_backbone
from cl_core.models.efficientnet import pretrained_state_dict
from cl_core.models.spec import ImageModelSpec
from cl_core.training_step import train_step
from cl_core.views import SimCLRViews

LITE0 = get_backbone("efficientnet-lite0")
DAISY = 985  # ImageNet class ids
BELL_COTE, PALACE = 442, 698


def _spec(size: int = 32, **fine_tuning) -> ImageModelSpec:
    return ImageModelSpec(3, size, (1,), (8,), proj_hidden=32, proj_dim=16, backbone=LITE0.name,
                          pretrained=True, pixel_mean=LITE0.pixel_mean, pixel_std=LITE0.pixel_std, **fine_tuning)


def _batchnorm_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in module.state_dict().items() if "running_" in name}


def test_the_pretrained_encoder_holds_every_tensor_of_the_package_file_and_no_random_one():
    stored = pretrained_state_dict()
    assert LITE0.weights.path().name == "efficientnet-lite0-57934424.pth"
    encoder = _spec().build(pretrained_weights=True).encoder
    loaded = encoder.state_dict()
    backbone_keys = {key for key in stored if not key.startswith("_fc.")}
    assert {key.removeprefix("net.") for key in loaded} == backbone_keys
    for key in backbone_keys:
        torch.testing.assert_close(loaded[f"net.{key}"], stored[key], rtol=0, atol=0)
    torch.manual_seed(0)
    fresh = _spec().build().encoder.state_dict()
    assert not torch.equal(fresh["net._conv_stem.weight"], stored["_conv_stem.weight"])


def test_the_table_normalisation_is_the_one_the_weights_were_trained_with():
    """On scikit-learn's two sample photos, the pretrained network (classifier kept) names the
    flower a daisy and the building a bell cote or palace, and the stem's activation variance
    matches its BatchNorm running variance (torchvision's ImageNet mean/std: ~6x too large)."""
    from efficientnet_lite_pytorch import EfficientNet
    from sklearn.datasets import load_sample_images

    net = EfficientNet.from_name("efficientnet-lite0", image_size=224)
    net.load_state_dict(pretrained_state_dict(), strict=True)
    net.eval()
    photos = [np.asarray(Image.fromarray(image).resize((224, 224), Image.Resampling.BILINEAR))
              for image in load_sample_images().images]  # china.jpg, flower.jpg
    pixels = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).float() / 255  # (2, 3, 224, 224)
    mean, std = torch.tensor(LITE0.pixel_mean).view(1, 3, 1, 1), torch.tensor(LITE0.pixel_std).view(1, 3, 1, 1)
    with torch.inference_mode():
        normalised = (pixels - mean) / std
        china, flower = net(normalised).argmax(dim=1).tolist()
        ratio = net._conv_stem(normalised).var(dim=(0, 2, 3)) / net._bn0.running_var
    assert flower == DAISY and china in (BELL_COTE, PALACE)
    assert 0.5 < ratio.median().item() < 2.0


def test_pooled_features_are_1280_wide_finite_and_every_trainable_parameter_gets_a_gradient():
    model = _spec(freeze_stages=2).build_training_model()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    features = model.embedder(images)
    assert features.shape == (4, 1280) == (4, model.embedder.embedding_dim)
    projections = model(images)
    assert projections.shape == (4, 16) and torch.isfinite(projections).all()
    projections.pow(2).sum().backward()
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    missing = [name for name, p in trainable.items() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no gradient reached {missing}"
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(p.grad is None for name, p in model.named_parameters() if name in frozen)


def test_stages_are_the_stem_and_the_seven_block_groups():
    encoder = _spec().build().encoder
    stages = encoder.stage_modules()
    assert [len(list(stage.children())) for stage in stages] == [2, 1, 2, 2, 3, 3, 4, 1]
    blocks = [block for stage in stages[1:] for block in stage]
    assert blocks == list(encoder.net._blocks)


def test_a_grayscale_batch_embeds_like_its_rgb_replica():
    embedder = _spec().build(pretrained_weights=True).eval()
    gray = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    with torch.inference_mode():
        torch.testing.assert_close(embedder(gray), embedder(gray.expand(-1, 3, -1, -1)))


def _one_step(model: torch.nn.Module, labels: bool = False) -> None:
    torch.manual_seed(0)
    views = SimCLRViews(32, 3, crop_scale=(0.5, 1.0))
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    loss = build_objective(LossConfig(name="supcon" if labels else "ntxent"), "image", gather_distributed=False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    train_step(model, views, images, loss, optimizer, labels=torch.tensor([0, 1] * 4) if labels else None)


@pytest.mark.parametrize("stages", [1, 3])
def test_frozen_stages_keep_their_weights_and_batchnorm_statistics_through_a_training_step(stages):
    model = _spec(freeze_stages=stages).build_training_model()
    frozen = model.embedder.encoder.stage_modules()[: stages + 1]
    free = model.embedder.encoder.stage_modules()[stages + 1 :]
    before = [{**{n: p.clone() for n, p in m.named_parameters()}, **_batchnorm_state(m)} for m in frozen + free]
    _one_step(model)
    after = [{**dict(m.named_parameters()), **_batchnorm_state(m)} for m in frozen + free]
    for was, now in zip(before[: len(frozen)], after[: len(frozen)], strict=True):
        for name, value in was.items():
            torch.testing.assert_close(now[name], value, rtol=0, atol=0, msg=f"frozen {name} changed")
    for was, now in zip(before[len(frozen) :], after[len(frozen) :], strict=True):
        assert any(not torch.equal(now[name], value) for name, value in was.items() if "running_var" in name)
        assert any(not torch.equal(now[name], value) for name, value in was.items() if name.endswith("weight"))
    assert model.training and not any(layer.training for stage in frozen for layer in stage.modules() if layer is not stage)


def test_freeze_bn_keeps_every_backbone_statistic_while_the_weights_learn():
    model = _spec(freeze_bn=True).build_training_model()
    encoder = model.embedder.encoder
    statistics = _batchnorm_state(encoder)
    weights = {name: p.clone() for name, p in encoder.named_parameters()}
    _one_step(model, labels=True)
    for name, value in statistics.items():
        torch.testing.assert_close(encoder.state_dict()[name], value, rtol=0, atol=0)
    moved = [name for name, p in encoder.named_parameters() if not torch.equal(p, weights[name])]
    assert "net._conv_stem.weight" in moved and "net._bn1.weight" in moved
    # The projection head's BatchNorm is not the backbone's: it keeps learning its statistics.
    assert model.head.net[1].training
