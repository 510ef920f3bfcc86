import math

import pytest
import torch

from cl_core.losses import InfoNCELoss, build_loss
from tests.cl_core.losses import reference as ref


def naive_infonce(query, positive, negatives, temperature):
    """Query by query: -log(e^{s(q,p)} / (e^{s(q,p)} + sum_k e^{s(q,n_k)})), s = cosine / T."""
    total = 0.0
    for i in range(query.shape[0]):
        own = negatives[i] if negatives.dim() == 3 else negatives
        numerator = ref.exp_cosine(query[i], positive[i], temperature)
        denominator = numerator + sum(ref.exp_cosine(query[i], own[k], temperature) for k in range(own.shape[0]))
        total = total - torch.log(numerator / denominator)
    return total / query.shape[0]


@ref.parametrize_grid(batch=[1, 4, 9], dim=[3, 16], temperature=[0.05, 0.3, 1.0], shared=[False, True])
def test_matches_naive_reference(batch, dim, temperature, shared):
    shape = (5, dim) if shared else (batch, 5, dim)
    generator = torch.Generator().manual_seed(batch * dim)
    query, positive, negatives = ref.randn_from(generator, (batch, dim), (batch, dim), shape, dtype=torch.float64)
    ours = InfoNCELoss(temperature)(query, positive, negatives)
    ref.assert_matches_reference(ours, naive_infonce(query, positive, negatives, temperature))


def test_exact_value_on_hand_built_case():
    # Positive identical to the query (sim 1), two orthogonal negatives (sim 0) and one opposite
    # (sim -1), T = 0.5: l = -log(e^2 / (e^2 + 2 + e^-2)).
    query = torch.tensor([[1.0, 0.0, 0.0]])
    negatives = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]]])
    loss = InfoNCELoss(0.5)(query, query.clone(), negatives)
    assert loss.item() == pytest.approx(-math.log(math.e**2 / (math.e**2 + 2.0 + math.e**-2)), abs=1e-6)


def test_shared_negatives_equal_the_same_negatives_repeated_per_query():
    generator = torch.Generator().manual_seed(0)
    query, positive = torch.randn(6, 8, generator=generator), torch.randn(6, 8, generator=generator)
    shared = torch.randn(10, 8, generator=generator)
    loss = InfoNCELoss(0.2)
    assert torch.allclose(loss(query, positive, shared), loss(query, positive, shared.expand(6, 10, 8)), atol=1e-6)


def test_invariant_to_scale_batch_permutation_and_negative_order():
    generator = torch.Generator().manual_seed(0)
    query, positive, negatives = ref.randn_from(generator, (8, 16), (8, 16), (8, 5, 16))
    loss = InfoNCELoss(0.3)
    base = ref.assert_invariant_to_scale_and_permutation(loss, (query, positive, negatives), (2.0, 0.1, 7.0), generator)
    assert torch.allclose(loss(query, positive, negatives.flip(1)), base, atol=1e-5)


def test_rejects_mismatched_shapes():
    loss = InfoNCELoss()
    with pytest.raises(ValueError, match="negatives"):
        loss(torch.randn(4, 3), torch.randn(4, 3), torch.randn(5, 2, 3))
    with pytest.raises(ValueError, match="positive"):
        loss(torch.randn(4, 3), torch.randn(3, 3), torch.randn(2, 3))


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_rejects_non_positive_temperature(temperature):
    ref.assert_rejects_non_positive_temperature(InfoNCELoss, temperature)


def test_registry_builds_by_name():
    assert isinstance(build_loss("infonce", temperature=0.1), InfoNCELoss)
