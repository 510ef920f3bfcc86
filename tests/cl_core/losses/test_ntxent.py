import math

import pytest
import torch
import torch.nn.functional as F

from cl_core.losses import NTXentLoss, build_loss


def naive_ntxent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss written out view by view with loops, as in the paper's Algorithm 1."""
    views = torch.cat([z1, z2])
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        sims = [F.cosine_similarity(views[i], views[k], dim=0) / temperature for k in range(2 * n)]
        denominator = sum(torch.exp(s) for k, s in enumerate(sims) if k != i)
        total = total - torch.log(torch.exp(sims[positive]) / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("batch", [2, 5, 16])
@pytest.mark.parametrize("dim", [3, 32])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_matches_naive_reference(batch, dim, temperature):
    generator = torch.Generator().manual_seed(batch * dim)
    z1, z2 = torch.randn(batch, dim, generator=generator, dtype=torch.float64), torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    ours = NTXentLoss(temperature, gather_distributed=False)(z1, z2)
    assert torch.allclose(ours, naive_ntxent(z1, z2, temperature), atol=1e-10)


def test_exact_value_on_hand_built_case():
    # Two samples, orthogonal unit vectors; each view identical to its pair.
    # For view 0: positive sim 1, negatives: sample 1's two views with sim 0.
    # l = -log(e^{1/T} / (e^{1/T} + 2 e^{0})) with T = 1, the same for all four views.
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = NTXentLoss(temperature=1.0)(z1, z1.clone())
    expected = -math.log(math.e / (math.e + 2.0))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_invariant_to_input_scale_and_batch_permutation():
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 16, generator=generator), torch.randn(8, 16, generator=generator)
    loss = NTXentLoss(0.3)
    base = loss(z1, z2)
    permutation = torch.randperm(8, generator=generator)
    assert torch.allclose(loss(3.0 * z1, 0.5 * z2), base, atol=1e-5)
    assert torch.allclose(loss(z1[permutation], z2[permutation]), base, atol=1e-5)
    assert torch.allclose(loss(z2, z1), base, atol=1e-5)  # swapping the views is symmetric


def test_perfect_pairs_give_lower_loss_than_random():
    z = torch.randn(16, 8)
    assert NTXentLoss(0.2)(z, z.clone()) < NTXentLoss(0.2)(z, torch.randn(16, 8))


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_rejects_non_positive_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature)


def test_registry_builds_by_name_and_rejects_unknown():
    assert isinstance(build_loss("ntxent", temperature=0.1), NTXentLoss)
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        build_loss("nope")
