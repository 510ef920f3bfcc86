import math

import pytest
import torch
import torch.nn.functional as F

from cl_core.losses import CoSENTLoss, build_loss


def naive_cosent(embeddings1, embeddings2, scores, scale):
    """The paper's formula pair by pair: log(1 + sum over s_i > s_j of exp(scale * (c_j - c_i)))."""
    cosines = F.cosine_similarity(embeddings1, embeddings2, dim=1)
    total = 1.0 + 0.0 * cosines.sum()  # stays in the graph when no pair is ranked (B = 1, all ties)
    for i in range(len(scores)):
        for j in range(len(scores)):
            if scores[i] > scores[j]:
                total = total + torch.exp(scale * (cosines[j] - cosines[i]))
    return torch.log(total)


def random_pairs(batch, dim, seed, integer_scores=True, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    embeddings1 = torch.randn(batch, dim, generator=generator, dtype=dtype)
    embeddings2 = torch.randn(batch, dim, generator=generator, dtype=dtype)
    if integer_scores:  # STS-B-like 0..5: many ties, which must not be compared
        scores = torch.randint(0, 6, (batch,), generator=generator).to(dtype)
    else:
        scores = torch.rand(batch, generator=generator, dtype=dtype)
    return embeddings1, embeddings2, scores


@pytest.mark.parametrize("batch", [1, 2, 7, 33])
@pytest.mark.parametrize("dim", [3, 32])
@pytest.mark.parametrize("scale", [0.5, 20.0])
@pytest.mark.parametrize("integer_scores", [False, True])
def test_value_and_gradients_match_naive_reference(batch, dim, scale, integer_scores):
    embeddings1, embeddings2, scores = random_pairs(batch, dim, batch * dim, integer_scores)
    ours_inputs = [embeddings1.clone().requires_grad_(), embeddings2.clone().requires_grad_()]
    naive_inputs = [embeddings1.clone().requires_grad_(), embeddings2.clone().requires_grad_()]
    ours = CoSENTLoss(scale, gather_distributed=False)(*ours_inputs, scores)
    expected = naive_cosent(*naive_inputs, scores, scale)
    assert torch.allclose(ours, expected, atol=1e-10)
    ours.backward()
    expected.backward()
    for got, want in zip(ours_inputs, naive_inputs, strict=True):
        assert torch.isfinite(got.grad).all()
        assert torch.allclose(got.grad, want.grad, atol=1e-10)


def test_exact_value_on_hand_built_case():
    # Cosines 0.8, 0.6, 0 (first side (1, 0), second side unit vectors), scores 3, 1, 2, scale 1.
    # Ordered pairs (higher, lower): (0, 1) -> exp(0.6 - 0.8), (0, 2) -> exp(0 - 0.8), and the
    # violated (2, 1) -> exp(0.6 - 0).
    first = torch.tensor([[1.0, 0.0]] * 3, dtype=torch.float64)
    second = torch.tensor([[0.8, 0.6], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    scores = torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64)
    expected = math.log(1 + math.exp(-0.2) + math.exp(-0.8) + math.exp(0.6))
    assert CoSENTLoss(1.0)(first, second, scores).item() == pytest.approx(expected, abs=1e-12)
    # Equal scores are never compared: nothing to rank, log(1) = 0.
    assert CoSENTLoss(1.0)(first, second, torch.ones(3)).item() == 0.0


def test_invariant_to_pair_order_embedding_scale_and_monotone_score_maps():
    embeddings1, embeddings2, scores = random_pairs(16, 8, 0, integer_scores=False)
    loss = CoSENTLoss(20.0)
    base = loss(embeddings1, embeddings2, scores)
    permutation = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(loss(embeddings1[permutation], embeddings2[permutation], scores[permutation]), base, atol=1e-10)
    row_scales = torch.rand(16, 1, dtype=torch.float64) * 10 + 0.1
    assert torch.allclose(loss(row_scales * embeddings1, 3.0 * embeddings2, scores), base, atol=1e-10)
    assert torch.allclose(loss(embeddings1, embeddings2, 5.0 * scores.exp() - 2.0), base, atol=1e-10)
    # Swapping the sides of every pair leaves the cosines unchanged.
    assert torch.allclose(loss(embeddings2, embeddings1, scores), base, atol=1e-10)


def test_perfect_ranking_drives_the_loss_towards_zero():
    # Cosines -1, -0.5, 0.5, 1 increase with the scores, every margin >= 0.5: each of the six
    # terms is at most exp(-20 * 0.5).
    angles = torch.tensor([math.pi, 2 * math.pi / 3, math.pi / 3, 0.0], dtype=torch.float64)
    first = torch.tensor([[1.0, 0.0]] * 4, dtype=torch.float64)
    second = torch.stack([angles.cos(), angles.sin()], dim=1)
    scores = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    assert CoSENTLoss(20.0)(first, second, scores).item() < 1e-3
    assert CoSENTLoss(20.0)(first, second, -scores).item() > 10.0  # fully reversed


def test_integer_and_bool_scores_and_low_precision_embeddings():
    embeddings1, embeddings2, scores = random_pairs(10, 6, 3, dtype=torch.float32)
    loss = CoSENTLoss()
    expected = loss(embeddings1, embeddings2, scores)
    assert torch.allclose(loss(embeddings1, embeddings2, scores.long()), expected)
    binary = scores > 2
    assert torch.allclose(loss(embeddings1, embeddings2, binary), loss(embeddings1, embeddings2, binary.float()))
    half = loss(embeddings1.bfloat16(), embeddings2.bfloat16(), scores)
    assert half.dtype == torch.float32 and torch.isfinite(half)


def test_agrees_with_sentence_transformers():
    losses = pytest.importorskip("sentence_transformers.sentence_transformer.losses")
    for seed, (batch, dim, scale) in enumerate([(8, 4, 20.0), (32, 16, 5.0), (64, 384, 20.0)]):
        embeddings1, embeddings2, scores = random_pairs(batch, dim, seed)
        reference = losses.CoSENTLoss(torch.nn.Identity(), scale=scale)
        expected = reference.compute_loss_from_embeddings([embeddings1, embeddings2], scores)
        assert torch.allclose(CoSENTLoss(scale)(embeddings1, embeddings2, scores), expected, atol=1e-10)


def test_rejects_bad_parameters_and_shapes():
    for scale in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="scale must be > 0"):
            CoSENTLoss(scale)
    with pytest.raises(ValueError, match="embeddings1 and embeddings2"):
        CoSENTLoss()(torch.randn(4, 3), torch.randn(4, 2), torch.rand(4))
    with pytest.raises(ValueError, match="embeddings1 and embeddings2"):
        CoSENTLoss()(torch.randn(4), torch.randn(4), torch.rand(4))
    with pytest.raises(ValueError, match="scores"):
        CoSENTLoss()(torch.randn(4, 3), torch.randn(4, 3), torch.rand(3))
    with pytest.raises(ValueError, match="scores"):
        CoSENTLoss()(torch.randn(4, 3), torch.randn(4, 3), torch.rand(4, 1))


def test_registry_builds_by_name():
    loss = build_loss("cosent", scale=10.0, gather_distributed=False)
    assert isinstance(loss, CoSENTLoss) and loss.scale == 10.0 and not loss.gather_distributed
