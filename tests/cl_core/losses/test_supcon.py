import math

import pytest
import torch
import torch.nn.functional as F

from cl_core.losses import NTXentLoss, SupConLoss, build_loss


def naive_supcon(features, labels, temperature):
    """Khosla et al.'s Eq. (2), L_out, anchor by anchor over the flattened views; anchors without
    a positive are skipped."""
    batch, views, _ = features.shape
    flat = [(features[b, v], labels[b]) for v in range(views) for b in range(batch)]
    losses = []
    for i, (anchor, label) in enumerate(flat):
        others = [k for k in range(len(flat)) if k != i]
        positives = [k for k in others if flat[k][1] == label]
        if not positives:
            continue
        denominator = sum(torch.exp(F.cosine_similarity(anchor, flat[k][0], dim=0) / temperature) for k in others)
        total = 0.0
        for p in positives:
            numerator = torch.exp(F.cosine_similarity(anchor, flat[p][0], dim=0) / temperature)
            total = total + torch.log(numerator / denominator)
        losses.append(-total / len(positives))
    return sum(losses) / len(losses)


def _batch(batch, views, dim, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, views, dim, generator=generator, dtype=dtype)
    labels = torch.randint(0, max(2, batch // 2), (batch,), generator=generator)
    return features, labels


@pytest.mark.parametrize("batch", [2, 5, 12])
@pytest.mark.parametrize("dim", [3, 32])
@pytest.mark.parametrize("temperature", [0.07, 0.5, 1.0])
@pytest.mark.parametrize("views", [1, 2, 3])
def test_matches_naive_reference(batch, dim, temperature, views):
    features, labels = _batch(batch, views, dim, seed=batch * dim + views)
    if views == 1:
        labels[1] = labels[0]  # at least one anchor with a positive
    ours = SupConLoss(temperature, gather_distributed=False)(features, labels)
    assert torch.allclose(ours, naive_supcon(features, labels, temperature), atol=1e-10)


def test_two_dimensional_features_are_one_view():
    features, labels = _batch(6, 1, 4, seed=0)
    labels[:2] = 0
    loss = SupConLoss(0.3)
    assert torch.equal(loss(features[:, 0], labels), loss(features, labels))


def test_exact_value_on_hand_built_case():
    # One view each: samples 0 and 1 identical (label 0), sample 2 orthogonal (label 1), T = 1.
    # Anchors 0 and 1: positive sim 1, candidates {1, 0}: -log(e / (e + 1)). Anchor 2 has no
    # positive and is skipped.
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss = SupConLoss(1.0)(features, torch.tensor([0, 0, 1]))
    assert loss.item() == pytest.approx(-math.log(math.e / (math.e + 1.0)), abs=1e-6)


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_without_labels_two_views_is_ntxent(temperature):
    generator = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(7, 5, generator=generator), torch.randn(7, 5, generator=generator)
    supcon = SupConLoss(temperature)(torch.stack([z1, z2], dim=1))
    assert torch.allclose(supcon, NTXentLoss(temperature)(z1, z2), atol=1e-6)


def test_invariant_to_scale_batch_and_view_permutation_and_label_renaming():
    features, labels = _batch(10, 2, 8, seed=1, dtype=torch.float32)
    generator = torch.Generator().manual_seed(3)
    loss = SupConLoss(0.2)
    base = loss(features, labels)
    permutation = torch.randperm(10, generator=generator)
    assert torch.allclose(loss(features * (torch.rand(10, 2, 1, generator=generator) + 0.5), labels), base, atol=1e-5)
    assert torch.allclose(loss(features[permutation], labels[permutation]), base, atol=1e-5)
    assert torch.allclose(loss(features.flip(1), labels), base, atol=1e-5)
    assert torch.allclose(loss(features, 100 - 3 * labels), base, atol=1e-5)


def test_no_anchor_with_a_positive_gives_a_connected_zero():
    features = torch.randn(4, 3, requires_grad=True)
    loss = SupConLoss(0.5)(features, torch.arange(4))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(features.grad, torch.zeros_like(features))


@pytest.mark.parametrize("views", [1, 2])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_agrees_with_pytorch_metric_learning(views, temperature):
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses", reason="pytorch-metric-learning not installed")
    features, labels = _batch(16, views, 12, seed=views, dtype=torch.float32)
    labels[-1] = 99  # an anchor without a positive when views == 1: skipped by both
    # pml takes the flattened views with their labels; its AvgNonZeroReducer averages over the
    # anchors with a non-zero loss, i.e. those that have a positive.
    expected = pml_losses.SupConLoss(temperature=temperature)(features.reshape(-1, 12), labels.repeat_interleave(views))
    assert torch.allclose(SupConLoss(temperature)(features, labels), expected, atol=1e-5)


def test_rejects_bad_parameters_and_shapes():
    with pytest.raises(ValueError, match="temperature"):
        SupConLoss(0.0)
    with pytest.raises(ValueError, match="labels"):
        SupConLoss()(torch.randn(4, 2, 3), torch.arange(3))
    with pytest.raises(ValueError, match="features"):
        SupConLoss()(torch.randn(4, 2, 3, 1), torch.arange(4))


def test_registry_builds_by_name():
    assert isinstance(build_loss("supcon", temperature=0.1, gather_distributed=False), SupConLoss)
