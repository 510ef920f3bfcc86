import math

import pytest
import torch
import torch.nn.functional as F

from cl_core.losses import CLIPLoss, build_loss
from tests.cl_core.losses import reference as ref


def naive_clip(image, text, logit_scale):
    """Radford et al.'s pseudo-code pair by pair: image -> text and text -> image cross-entropy."""
    n = image.shape[0]
    image_to_text, text_to_image = 0.0, 0.0
    for i in range(n):
        row = [torch.exp(logit_scale * F.cosine_similarity(image[i], text[j], dim=0)) for j in range(n)]
        column = [torch.exp(logit_scale * F.cosine_similarity(text[i], image[j], dim=0)) for j in range(n)]
        image_to_text = image_to_text - torch.log(row[i] / sum(row))
        text_to_image = text_to_image - torch.log(column[i] / sum(column))
    return (image_to_text + text_to_image) / (2 * n)


@ref.parametrize_grid(batch=[1, 5, 16], dim=[3, 32], temperature=[0.01, 0.07, 1.0])
def test_matches_naive_reference(batch, dim, temperature):
    image, text = ref.seeded_randn(batch * dim, (batch, dim), (batch, dim))
    ours = CLIPLoss(temperature, gather_distributed=False).double()(image, text)
    ref.assert_matches_reference(ours, naive_clip(image, text, 1.0 / temperature))


def test_exact_value_on_hand_built_case():
    # Two orthogonal pairs, each image equal to its text, T = 1: both directions give
    # -log(e / (e + 1)) per row.
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = CLIPLoss(temperature=1.0)(image, image.clone())
    assert loss.item() == pytest.approx(-math.log(math.e / (math.e + 1.0)), abs=1e-6)


def test_invariant_to_scale_batch_permutation_and_modality_swap():
    generator = torch.Generator().manual_seed(0)
    image, text = ref.randn_from(generator, (8, 16), (8, 16))
    ref.assert_invariant_to_scale_and_permutation(CLIPLoss(0.1), (image, text), (5.0, 0.2), generator, symmetric=True)


def test_learnable_temperature_gets_a_gradient_and_the_fixed_one_is_a_buffer():
    image, text = ref.seeded_randn(1, (6, 4), (6, 4), dtype=torch.float32)
    learnable = CLIPLoss(0.5, learnable_temperature=True)
    assert [name for name, _ in learnable.named_parameters()] == ["log_logit_scale"]
    learnable(image, text).backward()
    assert learnable.log_logit_scale.grad is not None and learnable.log_logit_scale.grad != 0
    fixed = CLIPLoss(0.5)
    assert list(fixed.parameters()) == [] and "log_logit_scale" in fixed.state_dict()
    assert torch.allclose(fixed(image, text), CLIPLoss(0.5, learnable_temperature=True)(image, text))


def test_logit_scale_is_clamped_to_the_maximum():
    image, text = ref.seeded_randn(2, (6, 4), (6, 4), dtype=torch.float32)
    loss = CLIPLoss(0.07, learnable_temperature=True, max_logit_scale=50.0)
    with torch.no_grad():
        loss.log_logit_scale.fill_(math.log(1000.0))  # as if an optimiser had pushed it up
    assert loss.logit_scale.item() == pytest.approx(50.0)
    assert torch.allclose(loss(image, text), CLIPLoss(1 / 50.0, max_logit_scale=50.0)(image, text))


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="temperature"):
        CLIPLoss(0.0)
    with pytest.raises(ValueError, match="max_logit_scale"):
        CLIPLoss(0.07, max_logit_scale=0.0)
    with pytest.raises(ValueError, match="temperature must be >= 1 / max_logit_scale"):
        CLIPLoss(0.001, max_logit_scale=100.0)
    with pytest.raises(ValueError, match="image_emb"):
        CLIPLoss()(torch.randn(4, 3), torch.randn(5, 3))


def test_registry_builds_by_name():
    loss = build_loss("clip", temperature=0.05, learnable_temperature=True)
    assert isinstance(loss, CLIPLoss) and loss.logit_scale.item() == pytest.approx(20.0)
