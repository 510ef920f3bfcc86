import pytest
import torch

from cl_core.losses import CLIPLoss, MultipleNegativesRankingLoss, NTXentLoss, SupConLoss
from cl_core.losses.two_view import TWO_VIEW_OBJECTIVES, TwoViewObjective


def _views(batch=8, dim=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    z1 = torch.randn(batch, dim, generator=generator, requires_grad=True)
    z2 = torch.randn(batch, dim, generator=generator, requires_grad=True)
    return z1, z2, torch.arange(batch) % 3


@pytest.mark.parametrize("name", TWO_VIEW_OBJECTIVES)
def test_every_objective_gives_a_differentiable_scalar(name):
    z1, z2, labels = _views()
    objective = TwoViewObjective(name, temperature=0.3)
    loss = objective(z1, z2, labels=labels if objective.uses_labels else None)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0


def test_objectives_map_onto_the_losses_they_name():
    z1, z2, labels = _views()
    assert torch.allclose(TwoViewObjective("ntxent", 0.3)(z1, z2), NTXentLoss(0.3)(z1, z2))
    assert torch.allclose(TwoViewObjective("supcon", 0.3)(z1, z2, labels=labels),
                          SupConLoss(0.3)(torch.stack([z1, z2], 1), labels))
    assert torch.allclose(TwoViewObjective("mnrl", 0.05)(z1, z2),
                          MultipleNegativesRankingLoss(scale=20.0, symmetric=True)(z1, z2))
    assert torch.allclose(TwoViewObjective("clip", 0.07)(z1, z2), CLIPLoss(0.07)(z1, z2))
    masked = TwoViewObjective("ntxent", 0.3, mask_same_label=True)
    assert masked.uses_labels
    assert torch.allclose(masked(z1, z2, labels=labels), NTXentLoss(0.3, mask_same_label=True)(z1, z2, labels=labels))
    assert not torch.allclose(masked(z1, z2, labels=labels), NTXentLoss(0.3)(z1, z2))


def test_learnable_clip_temperature_is_a_parameter_of_the_objective():
    objective = TwoViewObjective("clip", 0.07, learnable_temperature=True)
    assert sum(p.numel() for p in objective.parameters()) == 1


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "triplet"}, "does not train on two views"),
    ({"name": "clip", "mask_same_label": True}, "mask_same_label"),
])
def test_unsupported_combinations_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TwoViewObjective(temperature=0.2, **kwargs)
