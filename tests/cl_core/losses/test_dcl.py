import math

import pytest
import torch
import torch.nn.functional as F

from cl_core.losses import DCLLoss, NTXentLoss, build_loss


def naive_dcl(z1, z2, temperature, ids=None, labels=None):
    """Yeh et al.'s Eq. (6) view by view: -s(i, p)/T + log of the sum over negatives only, where
    the negatives leave out i, its positive, and (when given) same-id or same-label samples."""
    views = torch.cat([z1, z2])
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        negatives = 0.0
        for k in range(2 * n):
            same_id = ids is not None and ids[i % n] == ids[k % n]
            same_label = labels is not None and labels[i % n] == labels[k % n]
            if k in (i, positive) or same_id or same_label:
                continue
            negatives = negatives + torch.exp(F.cosine_similarity(views[i], views[k], dim=0) / temperature)
        positive_term = F.cosine_similarity(views[i], views[positive], dim=0) / temperature
        total = total - positive_term + torch.log(negatives)
    return total / (2 * n)


@pytest.mark.parametrize("batch", [2, 5, 16])
@pytest.mark.parametrize("dim", [3, 32])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_matches_naive_reference(batch, dim, temperature):
    generator = torch.Generator().manual_seed(batch * dim)
    z1, z2 = (torch.randn(batch, dim, generator=generator, dtype=torch.float64) for _ in range(2))
    ours = DCLLoss(temperature, gather_distributed=False)(z1, z2)
    assert torch.allclose(ours, naive_dcl(z1, z2, temperature), atol=1e-10)


@pytest.mark.parametrize("mask_same_label", [False, True])
def test_false_negative_masking_matches_naive_reference(mask_same_label):
    generator = torch.Generator().manual_seed(3)
    z1, z2 = (torch.randn(8, 5, generator=generator, dtype=torch.float64) for _ in range(2))
    ids = torch.tensor([0, 1, 1, 2, 3, 4, 5, 0])
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 4])
    loss = DCLLoss(0.3, gather_distributed=False, mask_same_label=mask_same_label)
    expected = naive_dcl(z1, z2, 0.3, ids, labels if mask_same_label else None)
    assert torch.allclose(loss(z1, z2, ids=ids, labels=labels), expected, atol=1e-10)


def test_exact_value_on_hand_built_case():
    # Two orthogonal samples, each view identical to its pair, T = 1: every view has positive
    # sim 1 and two negatives at sim 0, so l = -1 + log(2).
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert DCLLoss(1.0)(z, z.clone()).item() == pytest.approx(-1.0 + math.log(2.0), abs=1e-6)


def test_is_below_ntxent():
    # Row by row NT-Xent = DCL + log(1 + e^{s_p/T} / sum_neg e^{s/T}), a positive term.
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 8, generator=generator), torch.randn(6, 8, generator=generator)
    assert NTXentLoss(0.2)(z1, z2) > DCLLoss(0.2)(z1, z2)


def test_invariant_to_input_scale_batch_permutation_and_view_swap():
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 16, generator=generator), torch.randn(8, 16, generator=generator)
    loss = DCLLoss(0.3)
    base = loss(z1, z2)
    permutation = torch.randperm(8, generator=generator)
    assert torch.allclose(loss(3.0 * z1, 0.5 * z2), base, atol=1e-5)
    assert torch.allclose(loss(z1[permutation], z2[permutation]), base, atol=1e-5)
    assert torch.allclose(loss(z2, z1), base, atol=1e-5)


def test_rows_without_negatives_add_zero_and_keep_gradients_finite():
    z1, z2 = torch.randn(1, 4, requires_grad=True), torch.randn(1, 4, requires_grad=True)
    loss = DCLLoss(0.5)(z1, z2)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()


@pytest.mark.parametrize("temperature", [0.0, -0.1])
def test_rejects_non_positive_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        DCLLoss(temperature)


def test_registry_builds_by_name():
    assert isinstance(build_loss("dcl", temperature=0.2), DCLLoss)
