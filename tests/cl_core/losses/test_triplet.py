import pytest
import torch

from cl_core.losses import TripletMarginLoss, build_loss


def naive_distance(x, y, distance):
    if distance == "cosine":
        return 1.0 - (x @ y) / (torch.sqrt(x @ x) * torch.sqrt(y @ y))
    return torch.sqrt(((x - y) ** 2).sum())


def naive_explicit(anchor, positive, negative, margin, distance):
    total = 0.0
    for a, p, n in zip(anchor, positive, negative, strict=True):
        total = total + max(naive_distance(a, p, distance) - naive_distance(a, n, distance) + margin, 0.0)
    return torch.as_tensor(total / anchor.shape[0], dtype=anchor.dtype)


def naive_batch_hard(embeddings, labels, margin, distance):
    """Hermans et al.: per anchor, the farthest positive and the closest negative."""
    losses = []
    for a in range(len(labels)):
        positives = [naive_distance(embeddings[a], embeddings[p], distance)
                     for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        negatives = [naive_distance(embeddings[a], embeddings[n], distance)
                     for n in range(len(labels)) if labels[n] != labels[a]]
        if positives and negatives:
            losses.append(max(max(positives) - min(negatives) + margin, 0.0))
    return torch.as_tensor(sum(losses) / len(losses), dtype=embeddings.dtype)


def naive_semi_hard(embeddings, labels, margin, distance):
    """FaceNet / TF Addons: per positive pair, the closest negative farther than the positive,
    else the farthest negative."""
    losses = []
    for a in range(len(labels)):
        negatives = [naive_distance(embeddings[a], embeddings[n], distance)
                     for n in range(len(labels)) if labels[n] != labels[a]]
        for p in range(len(labels)):
            if p == a or labels[p] != labels[a] or not negatives:
                continue
            positive = naive_distance(embeddings[a], embeddings[p], distance)
            farther = [d for d in negatives if d > positive]
            negative = min(farther) if farther else max(negatives)
            losses.append(max(positive - negative + margin, 0.0))
    return torch.as_tensor(sum(losses) / len(losses), dtype=embeddings.dtype)


def _labelled(batch, dim, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch, dim, generator=generator, dtype=dtype)
    labels = torch.arange(batch) % max(2, batch // 3)  # every class has a positive for batch >= 4
    return embeddings, labels[torch.randperm(batch, generator=generator)]


@pytest.mark.parametrize("batch", [4, 7, 16])
@pytest.mark.parametrize("dim", [3, 32])
@pytest.mark.parametrize("margin", [0.0, 0.2, 1.0])
@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_explicit_triplets_match_naive_reference(batch, dim, margin, distance):
    generator = torch.Generator().manual_seed(batch * dim)
    anchor, positive, negative = (torch.randn(batch, dim, generator=generator, dtype=torch.float64) for _ in range(3))
    ours = TripletMarginLoss(margin, distance)(anchor, positive, negative)
    assert torch.allclose(ours, naive_explicit(anchor, positive, negative, margin, distance), atol=1e-10)


@pytest.mark.parametrize("batch", [4, 7, 16])
@pytest.mark.parametrize("dim", [3, 32])
@pytest.mark.parametrize("margin", [0.2, 1.0])
@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
def test_mined_triplets_match_naive_reference(batch, dim, margin, distance, mining):
    embeddings, labels = _labelled(batch, dim, seed=batch * dim)
    naive = naive_batch_hard if mining == "batch_hard" else naive_semi_hard
    ours = TripletMarginLoss(margin, distance, mining)(embeddings, labels)
    assert torch.allclose(ours, naive(embeddings, labels, margin, distance), atol=1e-10)


def test_exact_values_on_points_of_a_line():
    # Points 0, 1 (class 0) and 3, 6 (class 1), euclidean, margin 1.
    # Batch-hard: only anchor 3 violates: farthest positive 3, closest negative 2 -> 2; mean 2/4.
    # Semi-hard: only pair (3, 6) violates: no negative farther than 3 (d = 3 is not farther),
    # so the farthest one, 3 -> 1; mean over the 4 positive pairs 1/4.
    embeddings = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [6.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert TripletMarginLoss(1.0, "euclidean", "batch_hard")(embeddings, labels).item() == pytest.approx(0.5)
    assert TripletMarginLoss(1.0, "euclidean", "semi_hard")(embeddings, labels).item() == pytest.approx(0.25)
    negative = embeddings[:1] + torch.tensor([0.5, 0.0])
    explicit = TripletMarginLoss(1.0, "euclidean")(embeddings[:1], embeddings[1:2], negative)
    assert explicit.item() == pytest.approx(1.0 - 0.5 + 1.0)


@pytest.mark.parametrize("mining", [None, "batch_hard", "semi_hard"])
def test_invariant_to_batch_permutation_and_cosine_scale_and_euclidean_translation(mining):
    embeddings, labels = _labelled(12, 8, seed=5, dtype=torch.float32)
    generator = torch.Generator().manual_seed(1)
    permutation = torch.randperm(12, generator=generator)
    scale = torch.rand(12, 1, generator=generator) + 0.5

    def call(loss, x, y):
        return loss(x[:4], x[4:8], x[8:]) if mining is None else loss(x, y)

    cosine = TripletMarginLoss(0.3, "cosine", mining)
    euclidean = TripletMarginLoss(0.3, "euclidean", mining)
    base_cosine, base_euclidean = call(cosine, embeddings, labels), call(euclidean, embeddings, labels)
    assert torch.allclose(call(cosine, scale * embeddings, labels), base_cosine, atol=1e-5)
    assert torch.allclose(call(euclidean, embeddings + 3.0, labels), base_euclidean, atol=1e-5)
    if mining is not None:
        assert torch.allclose(call(cosine, embeddings[permutation], labels[permutation]), base_cosine, atol=1e-5)
        assert torch.allclose(call(euclidean, embeddings[permutation], labels[permutation]), base_euclidean, atol=1e-5)
    else:
        triplets = torch.randperm(4, generator=generator)
        permuted = torch.cat([embeddings[:4][triplets], embeddings[4:8][triplets], embeddings[8:][triplets]])
        assert torch.allclose(call(cosine, permuted, labels), base_cosine, atol=1e-5)


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
def test_duplicates_keep_euclidean_gradients_finite_and_no_valid_anchor_gives_zero(mining):
    embeddings = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 1.0]], requires_grad=True)
    loss = TripletMarginLoss(0.5, "euclidean", mining)(embeddings, torch.tensor([0, 0, 1]))
    loss.backward()
    assert torch.isfinite(embeddings.grad).all()
    lonely = TripletMarginLoss(0.5, "euclidean", mining)(embeddings, torch.tensor([0, 1, 2]))
    assert lonely.item() == 0.0 and lonely.requires_grad


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("mining", [None, "batch_hard"])
def test_agrees_with_pytorch_metric_learning(distance, mining):
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses", reason="pytorch-metric-learning not installed")
    from pytorch_metric_learning import distances, miners, reducers

    embeddings, labels = _labelled(12, 16, seed=3, dtype=torch.float32)
    if distance == "cosine":
        pml_distance = distances.CosineSimilarity()
    else:
        pml_distance = distances.LpDistance(normalize_embeddings=False)
    # pml's default reducer averages only the triplets with a non-zero loss; ours (like
    # torch.nn.TripletMarginLoss) averages all of them, which is pml's MeanReducer.
    pml_loss = pml_losses.TripletMarginLoss(margin=0.3, distance=pml_distance, reducer=reducers.MeanReducer())
    if mining is None:
        anchors = torch.arange(4)
        expected = pml_loss(embeddings, indices_tuple=(anchors, anchors + 4, anchors + 8))
        ours = TripletMarginLoss(0.3, distance)(embeddings[:4], embeddings[4:8], embeddings[8:])
    else:
        triplets = miners.BatchHardMiner(distance=pml_distance)(embeddings, labels)
        expected = pml_loss(embeddings, labels, indices_tuple=triplets)
        ours = TripletMarginLoss(0.3, distance, mining)(embeddings, labels)
    assert expected.item() > 0
    assert torch.allclose(ours, expected, atol=1e-5)


def test_rejects_bad_parameters_and_calls():
    with pytest.raises(ValueError, match="margin"):
        TripletMarginLoss(-0.1)
    with pytest.raises(ValueError, match="distance"):
        TripletMarginLoss(0.1, distance="manhattan")
    with pytest.raises(ValueError, match="mining"):
        TripletMarginLoss(0.1, mining="hardest")
    with pytest.raises(ValueError, match="forward\\(anchor, positive, negative\\)"):
        TripletMarginLoss(0.1)(torch.randn(4, 3), torch.arange(4))
    with pytest.raises(ValueError, match="forward\\(embeddings, labels\\)"):
        TripletMarginLoss(0.1, mining="batch_hard")(torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3))


def test_registry_builds_by_name():
    assert isinstance(build_loss("triplet", margin=0.5, distance="euclidean", mining="semi_hard"), TripletMarginLoss)
