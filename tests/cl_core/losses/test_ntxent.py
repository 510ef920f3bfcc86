import math

import pytest
import torch
import torch.nn.functional as F

from cl_core.losses import NTXentLoss, build_loss
from tests.cl_core.losses import reference as ref


def naive_ntxent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss written out view by view with loops, as in the paper's Algorithm 1."""
    views, anchors = ref.two_view_anchors(z1, z2)
    n = z1.shape[0]
    total = 0.0
    for i, positive in anchors:
        sims = [F.cosine_similarity(views[i], views[k], dim=0) / temperature for k in range(2 * n)]
        denominator = sum(torch.exp(s) for k, s in enumerate(sims) if k != i)
        total = total - torch.log(torch.exp(sims[positive]) / denominator)
    return total / (2 * n)


@ref.parametrize_grid(batch=[2, 5, 16], dim=[3, 32], temperature=[0.1, 0.5, 1.0])
def test_matches_naive_reference(batch, dim, temperature):
    z1, z2 = ref.seeded_randn(batch * dim, (batch, dim), (batch, dim))
    ref.assert_matches_reference(NTXentLoss(temperature, gather_distributed=False)(z1, z2), naive_ntxent(z1, z2, temperature))


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
    z1, z2 = ref.randn_from(generator, (8, 16), (8, 16))
    ref.assert_invariant_to_scale_and_permutation(NTXentLoss(0.3), (z1, z2), (3.0, 0.5), generator, symmetric=True)


def test_perfect_pairs_give_lower_loss_than_random():
    z = torch.randn(16, 8)
    assert NTXentLoss(0.2)(z, z.clone()) < NTXentLoss(0.2)(z, torch.randn(16, 8))


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_rejects_non_positive_temperature(temperature):
    ref.assert_rejects_non_positive_temperature(NTXentLoss, temperature)


def test_registry_builds_by_name_and_rejects_unknown():
    assert isinstance(build_loss("ntxent", temperature=0.1), NTXentLoss)
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        build_loss("nope")


def naive_masked_ntxent(z1, z2, temperature, ids=None, labels=None):
    """As `naive_ntxent`, leaving out of each denominator the views of any other sample with the
    same id, or the same label when labels are given (the positive view is always kept)."""
    views, anchors = ref.two_view_anchors(z1, z2)
    n = z1.shape[0]
    total = 0.0
    for i, positive in anchors:
        denominator = 0.0
        for k in range(2 * n):
            if k == i or (k != positive and ref.same_sample(i, k, n, ids, labels)):
                continue
            denominator = denominator + ref.exp_cosine(views[i], views[k], temperature)
        numerator = ref.exp_cosine(views[i], views[positive], temperature)
        total = total - torch.log(numerator / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("batch", [3, 8])
@pytest.mark.parametrize("mask_same_label", [False, True])
def test_false_negative_masking_matches_naive_reference(batch, mask_same_label):
    generator = torch.Generator().manual_seed(batch)
    z1, z2 = ref.randn_from(generator, (batch, 6), (batch, 6), dtype=torch.float64)
    ids = torch.randint(0, batch - 1, (batch,), generator=generator)  # at least one duplicate
    labels = torch.randint(0, 2, (batch,), generator=generator)
    loss = NTXentLoss(0.4, gather_distributed=False, mask_same_label=mask_same_label)
    expected = naive_masked_ntxent(z1, z2, 0.4, ids, labels if mask_same_label else None)
    ref.assert_matches_reference(loss(z1, z2, ids=ids, labels=labels), expected)


def test_unique_ids_change_nothing_and_a_duplicate_is_no_negative():
    generator = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator)
    loss = NTXentLoss(0.5)
    assert torch.allclose(loss(z1, z2, ids=torch.arange(6)), loss(z1, z2), atol=1e-6)
    # Hand-built: sample 1 duplicates sample 0 (same id). With T = 1 and orthogonal samples 0 and
    # 2, view 0 keeps only its positive (sim 1) and sample 2's two views (sim 0) as candidates.
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    z = torch.stack([e0, e0, e1])
    masked = NTXentLoss(1.0)(z, z.clone(), ids=torch.tensor([7, 7, 9]))
    # Sample 2's views see sample 0 and 1's four views at sim 0 and their positive at sim 1.
    views_01 = -math.log(math.e / (math.e + 2.0))
    views_2 = -math.log(math.e / (math.e + 4.0))
    assert masked.item() == pytest.approx((4 * views_01 + 2 * views_2) / 6, abs=1e-6)


def test_masking_by_label_needs_labels():
    with pytest.raises(ValueError, match="labels"):
        NTXentLoss(0.5, mask_same_label=True)(torch.randn(4, 3), torch.randn(4, 3))


@pytest.mark.parametrize("batch", [2, 7])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_agrees_with_pytorch_metric_learning(batch, temperature):
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses", reason="pytorch-metric-learning not installed")
    generator = torch.Generator().manual_seed(batch)
    z1, z2 = torch.randn(batch, 16, generator=generator), torch.randn(batch, 16, generator=generator)
    # pml's NTXent over 2B embeddings labelled by sample: each view's only positive is its pair,
    # every other view a negative, mean over the 2B positive pairs: the same objective.
    labels = torch.arange(batch).repeat(2)
    expected = pml_losses.NTXentLoss(temperature=temperature)(torch.cat([z1, z2]), labels)
    assert torch.allclose(NTXentLoss(temperature, gather_distributed=False)(z1, z2), expected, atol=1e-5)
