import pytest
import torch

from cl_core.losses import PairwiseContrastiveLoss, build_loss


def naive_distance(x, y, distance):
    if distance == "cosine":
        return 1.0 - (x @ y) / (torch.sqrt(x @ x) * torch.sqrt(y @ y))
    return torch.sqrt(((x - y) ** 2).sum())


def naive_contrastive(x1, x2, similar, margin, distance):
    """Hadsell et al. pair by pair, without their 1/2 factor: d^2 or max(0, m - d)^2."""
    total = torch.zeros((), dtype=x1.dtype)
    for a, b, same in zip(x1, x2, similar, strict=True):
        d = naive_distance(a, b, distance)
        total = total + (d**2 if same else max(margin - d, 0.0) ** 2)
    return total / x1.shape[0]


def _pairs(batch, dim, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    x1, x2 = (torch.randn(batch, dim, generator=generator, dtype=dtype) for _ in range(2))
    return x1, x2, torch.randint(0, 2, (batch,), generator=generator)


@pytest.mark.parametrize("batch", [1, 6, 16])
@pytest.mark.parametrize("dim", [3, 32])
@pytest.mark.parametrize("margin", [0.5, 1.0, 5.0])
@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_matches_naive_reference(batch, dim, margin, distance):
    x1, x2, similar = _pairs(batch, dim, seed=batch * dim)
    ours = PairwiseContrastiveLoss(margin, distance)(x1, x2, similar)
    assert torch.allclose(ours, naive_contrastive(x1, x2, similar, margin, distance), atol=1e-10)


def test_exact_value_on_hand_built_case():
    # Euclidean, margin 2: a similar pair at distance 3 costs 9, a dissimilar pair at distance 0.5
    # costs (2 - 0.5)^2 = 2.25, a dissimilar pair beyond the margin (distance 5) costs 0.
    x1 = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    x2 = torch.tensor([[3.0, 0.0], [1.0, 1.5], [3.0, 4.0]])
    similar = torch.tensor([True, False, False])
    loss = PairwiseContrastiveLoss(2.0, "euclidean")(x1, x2, similar)
    assert loss.item() == pytest.approx((9.0 + 2.25 + 0.0) / 3)


def test_bool_and_integer_similarity_flags_agree_and_identical_pairs_have_finite_gradients():
    x1, x2, similar = _pairs(8, 4, seed=0, dtype=torch.float32)
    loss = PairwiseContrastiveLoss(1.0)
    assert torch.equal(loss(x1, x2, similar), loss(x1, x2, similar.bool()))
    assert torch.equal(loss(x1, x2, similar), loss(x1, x2, similar.float()))
    same = x1.clone().requires_grad_()
    value = loss(same, x1, torch.tensor([1, 0] * 4))
    value.backward()
    assert torch.isfinite(same.grad).all()


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_invariant_to_pair_permutation_side_swap_and_cosine_scale(distance):
    x1, x2, similar = _pairs(10, 6, seed=1, dtype=torch.float32)
    loss = PairwiseContrastiveLoss(1.5, distance)
    base = loss(x1, x2, similar)
    permutation = torch.randperm(10, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(loss(x1[permutation], x2[permutation], similar[permutation]), base, atol=1e-5)
    assert torch.allclose(loss(x2, x1, similar), base, atol=1e-5)
    if distance == "cosine":
        assert torch.allclose(loss(4.0 * x1, 0.25 * x2, similar), base, atol=1e-5)
    else:
        assert torch.allclose(loss(x1 - 2.0, x2 - 2.0, similar), base, atol=1e-5)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("margin", [0.5, 1.2])
def test_agrees_with_pytorch_metric_learning(distance, margin):
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses", reason="pytorch-metric-learning not installed")
    from pytorch_metric_learning import distances, reducers

    # pml's ContrastiveLoss is not the same objective out of the box: it forms all pairs of a
    # labelled batch, its hinges are not squared (relu(d - pos_margin), relu(neg_margin - d)), and
    # its default reducer averages positive and negative pairs separately over non-zero terms
    # only. The equivalent setup: give pml exactly our B pairs as an indices tuple over cat(x1,
    # x2), keep its per-pair terms (DoNothingReducer), square them and average over all pairs.
    # Cosine maps through similarity s = 1 - d: pos_margin=1 gives d, neg_margin=1-m gives m - d.
    x1, x2, similar = _pairs(12, 8, seed=4, dtype=torch.float32)
    if distance == "cosine":
        pml_distance, pos_margin, neg_margin = distances.CosineSimilarity(), 1.0, 1.0 - margin
    else:
        pml_distance, pos_margin, neg_margin = distances.LpDistance(normalize_embeddings=False), 0.0, margin
    pml_loss = pml_losses.ContrastiveLoss(
        pos_margin=pos_margin, neg_margin=neg_margin, distance=pml_distance, reducer=reducers.DoNothingReducer()
    )
    index = torch.arange(12)
    positive, negative = index[similar == 1], index[similar == 0]
    terms = pml_loss(torch.cat([x1, x2]), indices_tuple=(positive, positive + 12, negative, negative + 12))
    expected = (terms["pos_loss"]["losses"].pow(2).sum() + terms["neg_loss"]["losses"].pow(2).sum()) / 12
    ours = PairwiseContrastiveLoss(margin, distance)(x1, x2, similar)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_rejects_bad_parameters_and_shapes():
    with pytest.raises(ValueError, match="margin"):
        PairwiseContrastiveLoss(0.0)
    with pytest.raises(ValueError, match="distance"):
        PairwiseContrastiveLoss(1.0, distance="dot")
    with pytest.raises(ValueError, match="similar"):
        PairwiseContrastiveLoss()(torch.randn(4, 3), torch.randn(4, 3), torch.ones(3))


def test_registry_builds_by_name():
    assert isinstance(build_loss("contrastive", margin=0.5, distance="cosine"), PairwiseContrastiveLoss)
