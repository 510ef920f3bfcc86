import math

import pytest
import torch
import torch.nn.functional as F

from cl_core.losses import CLIPLoss, MultipleNegativesRankingLoss, build_loss


def naive_mnrl(anchors, positives, hard_negatives, scale, symmetric, ids=None, labels=None):
    """sentence-transformers' formulation pair by pair: each anchor against every positive of
    the batch and every hard negative; with `symmetric`, each positive against every anchor.
    In-batch candidates of another pair with the same id (or label, when given) are skipped."""
    n = anchors.shape[0]

    def skipped(i, j):
        return j != i and ((ids is not None and ids[i] == ids[j]) or (labels is not None and labels[i] == labels[j]))

    def score(x, y):
        return torch.exp(scale * F.cosine_similarity(x, y, dim=0))

    forward, backward = 0.0, 0.0
    for i in range(n):
        denominator = sum(score(anchors[i], positives[j]) for j in range(n) if not skipped(i, j))
        if hard_negatives is not None:
            for j in range(n):
                for h in range(hard_negatives.shape[1]):
                    denominator = denominator + score(anchors[i], hard_negatives[j, h])
        forward = forward - torch.log(score(anchors[i], positives[i]) / denominator)
        reverse = sum(score(positives[i], anchors[j]) for j in range(n) if not skipped(i, j))
        backward = backward - torch.log(score(positives[i], anchors[i]) / reverse)
    return (forward + backward) / (2 * n) if symmetric else forward / n


@pytest.mark.parametrize("batch", [1, 5, 12])
@pytest.mark.parametrize("dim", [3, 32])
@pytest.mark.parametrize("scale", [1.0, 20.0])
@pytest.mark.parametrize("hard", [0, 2])
@pytest.mark.parametrize("symmetric", [False, True])
def test_matches_naive_reference(batch, dim, scale, hard, symmetric):
    generator = torch.Generator().manual_seed(batch * dim + hard)
    anchors, positives = (torch.randn(batch, dim, generator=generator, dtype=torch.float64) for _ in range(2))
    hard_negatives = torch.randn(batch, hard, dim, generator=generator, dtype=torch.float64) if hard else None
    ours = MultipleNegativesRankingLoss(scale, symmetric, gather_distributed=False)(anchors, positives, hard_negatives)
    assert torch.allclose(ours, naive_mnrl(anchors, positives, hard_negatives, scale, symmetric), atol=1e-10)


@pytest.mark.parametrize("mask_same_label", [False, True])
@pytest.mark.parametrize("symmetric", [False, True])
def test_false_negative_masking_matches_naive_reference(mask_same_label, symmetric):
    generator = torch.Generator().manual_seed(4)
    anchors, positives = (torch.randn(8, 5, generator=generator, dtype=torch.float64) for _ in range(2))
    hard_negatives = torch.randn(8, 3, 5, generator=generator, dtype=torch.float64)
    ids = torch.tensor([0, 1, 1, 2, 3, 4, 5, 0])
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 4])
    loss = MultipleNegativesRankingLoss(5.0, symmetric, mask_same_label=mask_same_label)
    expected = naive_mnrl(anchors, positives, hard_negatives, 5.0, symmetric, ids, labels if mask_same_label else None)
    assert torch.allclose(loss(anchors, positives, hard_negatives, ids=ids, labels=labels), expected, atol=1e-10)


def test_exact_value_on_hand_built_case():
    # Orthogonal pairs, anchor = positive, each hard negative opposite to its anchor, scale 1.
    # Anchor 0 sees its positive (sim 1), positive 1 (0), its hard negative (-1), anchor 1's
    # hard negative (0). The symmetric term sees only anchors: -log(e / (e + 1)).
    anchors = torch.eye(2)
    hard_negatives = -anchors.unsqueeze(1)  # (2, 1, 2)
    forward = -math.log(math.e / (math.e + 1.0 + math.exp(-1.0) + 1.0))
    backward = -math.log(math.e / (math.e + 1.0))
    loss = MultipleNegativesRankingLoss(1.0)
    symmetric = MultipleNegativesRankingLoss(1.0, symmetric=True)
    assert loss(anchors, anchors.clone(), hard_negatives).item() == pytest.approx(forward, abs=1e-6)
    both = symmetric(anchors, anchors.clone(), hard_negatives)
    assert both.item() == pytest.approx((forward + backward) / 2, abs=1e-6)


@pytest.mark.parametrize("scale", [5.0, 20.0])
def test_symmetric_without_hard_negatives_is_clip(scale):
    generator = torch.Generator().manual_seed(5)
    anchors, positives = torch.randn(9, 6, generator=generator), torch.randn(9, 6, generator=generator)
    mnrl = MultipleNegativesRankingLoss(scale, symmetric=True)(anchors, positives)
    assert torch.allclose(mnrl, CLIPLoss(temperature=1.0 / scale)(anchors, positives), atol=1e-5)


def test_invariant_to_scale_batch_permutation_and_hard_negative_order():
    generator = torch.Generator().manual_seed(0)
    anchors, positives = torch.randn(8, 16, generator=generator), torch.randn(8, 16, generator=generator)
    hard_negatives = torch.randn(8, 3, 16, generator=generator)
    loss = MultipleNegativesRankingLoss(10.0, symmetric=True)
    base = loss(anchors, positives, hard_negatives)
    permutation = torch.randperm(8, generator=generator)
    assert torch.allclose(loss(3.0 * anchors, 0.5 * positives, 2.0 * hard_negatives), base, atol=1e-5)
    permuted = loss(anchors[permutation], positives[permutation], hard_negatives[permutation])
    assert torch.allclose(permuted, base, atol=1e-5)
    assert torch.allclose(loss(anchors, positives, hard_negatives.flip(1)), base, atol=1e-5)


def test_rejects_bad_parameters_and_shapes():
    with pytest.raises(ValueError, match="scale"):
        MultipleNegativesRankingLoss(0.0)
    with pytest.raises(ValueError, match="hard_negatives"):
        MultipleNegativesRankingLoss()(torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match="anchors"):
        MultipleNegativesRankingLoss()(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="labels"):
        MultipleNegativesRankingLoss(mask_same_label=True)(torch.randn(4, 3), torch.randn(4, 3))


def test_registry_builds_by_name():
    loss = build_loss("mnrl", scale=20.0, symmetric=True, gather_distributed=False)
    assert isinstance(loss, MultipleNegativesRankingLoss)
