import math

import pytest
import torch
import torch.nn.functional as F

from cl_core.losses import DCLLoss, NTXentLoss, build_loss
from tests.cl_core.losses import reference as ref


def naive_dcl(z1, z2, temperature, ids=None, labels=None):
    """Yeh et al.'s Eq. (6) view by view: -s(i, p)/T + log of the sum over negatives only, where
    the negatives leave out i, its positive, and (when given) same-id or same-label samples."""
    views, anchors = ref.two_view_anchors(z1, z2)
    n = z1.shape[0]
    total = 0.0
    for i, positive in anchors:
        negatives = 0.0
        for k in range(2 * n):
            if k in (i, positive) or ref.same_sample(i, k, n, ids, labels):
                continue
            negatives = negatives + ref.exp_cosine(views[i], views[k], temperature)
        positive_term = F.cosine_similarity(views[i], views[positive], dim=0) / temperature
        total = total - positive_term + torch.log(negatives)
    return total / (2 * n)


@ref.parametrize_grid(batch=[2, 5, 16], dim=[3, 32], temperature=[0.1, 0.5, 1.0])
def test_matches_naive_reference(batch, dim, temperature):
    z1, z2 = ref.seeded_randn(batch * dim, (batch, dim), (batch, dim))
    ref.assert_matches_reference(DCLLoss(temperature, gather_distributed=False)(z1, z2), naive_dcl(z1, z2, temperature))


@pytest.mark.parametrize("mask_same_label", [False, True])
def test_false_negative_masking_matches_naive_reference(mask_same_label):
    z1, z2 = ref.seeded_randn(3, (8, 5), (8, 5))
    ids = torch.tensor([0, 1, 1, 2, 3, 4, 5, 0])
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 4])
    loss = DCLLoss(0.3, gather_distributed=False, mask_same_label=mask_same_label)
    expected = naive_dcl(z1, z2, 0.3, ids, labels if mask_same_label else None)
    ref.assert_matches_reference(loss(z1, z2, ids=ids, labels=labels), expected)


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
    z1, z2 = ref.randn_from(generator, (8, 16), (8, 16))
    ref.assert_invariant_to_scale_and_permutation(DCLLoss(0.3), (z1, z2), (3.0, 0.5), generator, symmetric=True)


def test_rows_without_negatives_add_zero_and_keep_gradients_finite():
    z1, z2 = torch.randn(1, 4, requires_grad=True), torch.randn(1, 4, requires_grad=True)
    loss = DCLLoss(0.5)(z1, z2)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()


@pytest.mark.parametrize("temperature", [0.0, -0.1])
def test_rejects_non_positive_temperature(temperature):
    ref.assert_rejects_non_positive_temperature(DCLLoss, temperature)


def test_registry_builds_by_name():
    assert isinstance(build_loss("dcl", temperature=0.2), DCLLoss)
