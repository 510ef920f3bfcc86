import pytest
import torch
import torch.distributed as dist

from cl_core.losses import (
    LOSSES,
    CLIPLoss,
    InfoNCELoss,
    MultipleNegativesRankingLoss,
    NTXentLoss,
    PairwiseContrastiveLoss,
    SupConLoss,
    TripletMarginLoss,
)
from cl_core.losses.two_view import MOMENTUM_OBJECTIVES, TWO_VIEW_OBJECTIVES, TwoViewObjective


def _views(batch=8, dim=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    z1 = torch.randn(batch, dim, generator=generator, requires_grad=True)
    z2 = torch.randn(batch, dim, generator=generator, requires_grad=True)
    return z1, z2, torch.arange(batch) % 3


@pytest.mark.parametrize("name", TWO_VIEW_OBJECTIVES)
def test_every_objective_gives_a_differentiable_scalar(name):
    z1, z2, labels = _views()
    objective = TwoViewObjective(name, temperature=0.3)
    loss = objective(z1, z2, labels=labels if objective.uses_labels else None)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0


def test_objectives_map_onto_the_losses_they_name():
    z1, z2, labels = _views()
    assert torch.allclose(TwoViewObjective("ntxent", 0.3)(z1, z2), NTXentLoss(0.3)(z1, z2))
    assert torch.allclose(TwoViewObjective("supcon", 0.3)(z1, z2, labels=labels),
                          SupConLoss(0.3)(torch.stack([z1, z2], 1), labels))
    assert torch.allclose(TwoViewObjective("mnrl", 0.05)(z1, z2),
                          MultipleNegativesRankingLoss(scale=20.0, symmetric=True)(z1, z2))
    assert torch.allclose(TwoViewObjective("clip", 0.07)(z1, z2), CLIPLoss(0.07)(z1, z2))
    masked = TwoViewObjective("ntxent", 0.3, mask_same_label=True)
    assert masked.uses_labels
    assert torch.allclose(masked(z1, z2, labels=labels), NTXentLoss(0.3, mask_same_label=True)(z1, z2, labels=labels))
    assert not torch.allclose(masked(z1, z2, labels=labels), NTXentLoss(0.3)(z1, z2))


def test_learnable_clip_temperature_is_a_parameter_of_the_objective():
    objective = TwoViewObjective("clip", 0.07, learnable_temperature=True)
    assert sum(p.numel() for p in objective.parameters()) == 1


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "barlow"}, "does not train on two views"),
    ({"name": "moco"}, "momentum_train_step"),
    ({"name": "clip", "mask_same_label": True}, "mask_same_label"),
    ({"name": "supcon", "mask_same_label": True}, "mask_same_label"),
    ({"name": "ntxent", "learnable_temperature": True}, "learnable_temperature applies to clip, not 'ntxent'"),
    ({"name": "ntxent", "margin": 0.3}, "margin applies to triplet and contrastive, not 'ntxent'"),
    ({"name": "infonce", "distance": "cosine"}, "distance applies to triplet and contrastive, not 'infonce'"),
    ({"name": "contrastive", "mining": "batch_hard"}, "mining applies to triplet, not 'contrastive'"),
    ({"name": "mnrl", "use_labels": True}, "use_labels applies to triplet and contrastive, not 'mnrl'"),
    ({"name": "triplet", "mining": "hardest"}, "mining of triplet must be one of"),
    ({"name": "triplet", "margin": -0.1}, "margin of triplet must be >= 0"),
    ({"name": "contrastive", "margin": 0.0}, "margin of contrastive must be > 0"),
    ({"name": "contrastive", "distance": "manhattan"}, "distance of contrastive must be one of"),
    ({"name": "infonce", "temperature": 0.0}, "temperature of infonce must be > 0"),
])
def test_unsupported_combinations_are_rejected(kwargs, match):
    kwargs = {"temperature": 0.2, **kwargs}
    with pytest.raises(ValueError, match=match):
        TwoViewObjective(**kwargs)


def test_momentum_objectives_are_not_two_view_objectives():
    assert MOMENTUM_OBJECTIVES == ("moco",)
    assert not set(MOMENTUM_OBJECTIVES) & set(TWO_VIEW_OBJECTIVES)
    assert set(TWO_VIEW_OBJECTIVES) | set(MOMENTUM_OBJECTIVES) <= set(LOSSES)


def test_options_default_and_labels_flag():
    triplet = TwoViewObjective("triplet", 0.2)
    assert (triplet.loss.margin, triplet.loss.distance, triplet.loss.mining) == (0.2, "cosine", "semi_hard")
    contrastive = TwoViewObjective("contrastive", 0.2)
    assert (contrastive.loss.margin, contrastive.loss.distance) == (0.5, "cosine")
    assert not triplet.uses_labels and not contrastive.uses_labels
    assert not TwoViewObjective("infonce", 0.2).uses_labels
    assert TwoViewObjective("infonce", 0.2, mask_same_label=True).uses_labels
    assert TwoViewObjective("triplet", 0.2, use_labels=True).uses_labels
    assert TwoViewObjective("contrastive", 0.2, mask_same_label=True).uses_labels
    # Positional arguments keep their order (the Ray worker passes the first four positionally).
    assert TwoViewObjective("clip", 0.1, False, True, False).loss.gather_distributed is False
    with pytest.raises(ValueError, match="needs labels"):
        TwoViewObjective("triplet", 0.2, use_labels=True)(*_views()[:2])


# --- naive references for the in-batch forms of infonce, triplet and contrastive --------------

def _cos(x, y):
    return (x @ y) / (torch.sqrt(x @ x) * torch.sqrt(y @ y))


def _distance(x, y, distance):
    return 1.0 - _cos(x, y) if distance == "cosine" else torch.sqrt(((x - y) ** 2).sum())


def naive_infonce(z1, z2, temperature, labels=None):
    losses = []
    for i in range(len(z1)):
        positive = torch.exp(_cos(z1[i], z2[i]) / temperature)
        negatives = [torch.exp(_cos(z1[i], z2[j]) / temperature) for j in range(len(z2))
                     if j != i and (labels is None or labels[j] != labels[i])]
        losses.append(-torch.log(positive / (positive + sum(negatives))))
    return sum(losses) / len(losses)


def _two_view_keys(batch, labels, use_labels):
    """Per row of [z1; z2]: the key positives share, the key negatives must differ in."""
    sample = torch.arange(batch).repeat(2)
    label = sample if labels is None else labels.repeat(2)
    return (label if use_labels else sample), label


def naive_triplet(z1, z2, margin, distance, mining, labels=None, use_labels=False):
    embeddings = torch.cat([z1, z2])
    positive_key, negative_key = _two_view_keys(len(z1), labels, use_labels)
    n = len(embeddings)
    losses = []
    for a in range(n):
        positives = [p for p in range(n) if p != a and positive_key[p] == positive_key[a]]
        negatives = [_distance(embeddings[a], embeddings[k], distance) for k in range(n)
                     if negative_key[k] != negative_key[a]]
        if not negatives:
            continue
        if mining == "batch_hard":
            hardest = max(_distance(embeddings[a], embeddings[p], distance) for p in positives)
            losses.append(torch.relu(hardest - min(negatives) + margin))
            continue
        for p in positives:
            d_ap = _distance(embeddings[a], embeddings[p], distance)
            farther = [d for d in negatives if d > d_ap]
            losses.append(torch.relu(d_ap - (min(farther) if farther else max(negatives)) + margin))
    return sum(losses) / len(losses)


def naive_contrastive(z1, z2, margin, distance, labels=None, use_labels=False):
    similar, dissimilar = [], []
    for i in range(len(z1)):
        for j in range(len(z2)):
            d = _distance(z1[i], z2[j], distance)
            same_label = labels is not None and labels[i] == labels[j]
            if i == j or (use_labels and same_label):
                similar.append(d ** 2)
            elif not same_label:
                dissimilar.append(torch.relu(margin - d) ** 2)
    return sum(similar) / len(similar) + sum(dissimilar) / len(dissimilar)


def _case_inputs(batch=7, dim=5, seed=3):
    generator = torch.Generator().manual_seed(seed)
    z1 = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    z2 = z1 + 0.7 * torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 3, (batch,), generator=generator)
    return z1, z2, labels


NEW_CASES = {
    # id: (TwoViewObjective kwargs, naive reference (z1, z2, labels) -> loss)
    "infonce": ({"name": "infonce", "temperature": 0.3}, lambda a, b, y: naive_infonce(a, b, 0.3)),
    "infonce_masked": ({"name": "infonce", "temperature": 0.3, "mask_same_label": True},
                       lambda a, b, y: naive_infonce(a, b, 0.3, y)),
    **{
        f"triplet_{mining}_{distance}_{mode}": (
            {"name": "triplet", "temperature": 0.2, "mining": mining, "distance": distance,
             "margin": 0.3 if distance == "cosine" else 1.0,
             "mask_same_label": mode == "masked", "use_labels": mode == "labels"},
            (lambda mining, distance, mode: lambda a, b, y: naive_triplet(
                a, b, 0.3 if distance == "cosine" else 1.0, distance, mining,
                None if mode == "plain" else y, mode == "labels"))(mining, distance, mode),
        )
        for mining in ("batch_hard", "semi_hard")
        for distance in ("cosine", "euclidean")
        for mode in ("plain", "masked", "labels")
    },
    **{
        f"contrastive_{distance}_{mode}": (
            {"name": "contrastive", "temperature": 0.2, "distance": distance,
             "margin": 0.5 if distance == "cosine" else 1.5,
             "mask_same_label": mode == "masked", "use_labels": mode == "labels"},
            (lambda distance, mode: lambda a, b, y: naive_contrastive(
                a, b, 0.5 if distance == "cosine" else 1.5, distance,
                None if mode == "plain" else y, mode == "labels"))(distance, mode),
        )
        for distance in ("cosine", "euclidean")
        for mode in ("plain", "masked", "labels")
    },
}


@pytest.mark.parametrize("case", NEW_CASES)
def test_new_objectives_equal_a_naive_loop_and_ignore_the_batch_order(case):
    kwargs, reference = NEW_CASES[case]
    z1, z2, labels = _case_inputs()
    objective = TwoViewObjective(**kwargs)
    labels_in = labels if objective.uses_labels else None
    loss = objective(z1, z2, labels=labels_in)
    assert torch.allclose(loss, reference(z1, z2, labels), atol=1e-10), (loss, reference(z1, z2, labels))
    permutation = torch.randperm(len(z1), generator=torch.Generator().manual_seed(5))
    permuted = objective(z1[permutation], z2[permutation],
                         labels=labels_in[permutation] if labels_in is not None else None)
    assert torch.allclose(permuted, loss, atol=1e-10)


def test_new_objectives_map_onto_the_library_losses():
    z1, z2, labels = _case_inputs()
    batch = len(z1)
    # infonce: InfoNCELoss with the explicit (B, B-1, D) negatives it avoids building.
    negatives = torch.stack([torch.cat([z2[:i], z2[i + 1:]]) for i in range(batch)])
    assert torch.allclose(TwoViewObjective("infonce", 0.3)(z1, z2), InfoNCELoss(0.3)(z1, z2, negatives))
    # triplet: TripletMarginLoss's mining on [z1; z2], sample index (or class) as labels.
    both, index = torch.cat([z1, z2]), torch.arange(batch).repeat(2)
    for mining in ("batch_hard", "semi_hard"):
        for distance in ("cosine", "euclidean"):
            library = TripletMarginLoss(0.2, distance, mining)
            assert torch.allclose(TwoViewObjective("triplet", 0.2, mining=mining, distance=distance)(z1, z2),
                                  library(both, index))
            assert torch.allclose(
                TwoViewObjective("triplet", 0.2, mining=mining, distance=distance, use_labels=True)(z1, z2, labels),
                library(both, labels.repeat(2)))
    # contrastive: PairwiseContrastiveLoss's mean over the B similar pairs + over the B(B-1) others.
    rows, cols = torch.meshgrid(torch.arange(batch), torch.arange(batch), indexing="ij")
    off = rows != cols
    for distance, margin in (("cosine", 0.5), ("euclidean", 1.0)):
        pairwise = PairwiseContrastiveLoss(margin, distance)
        expected = (pairwise(z1, z2, torch.ones(batch))
                    + pairwise(z1[rows[off]], z2[cols[off]], torch.zeros(int(off.sum()))))
        got = TwoViewObjective("contrastive", 0.2, distance=distance, margin=margin)(z1, z2)
        assert torch.allclose(got, expected)


@pytest.mark.parametrize("name", ["triplet", "contrastive"])
@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_margin_losses_have_finite_gradients_on_identical_views(name, distance):
    z = torch.randn(6, 4, dtype=torch.float64)
    z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    loss = TwoViewObjective(name, 0.2, distance=distance)(z1, z2)
    loss.backward()
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()


def test_a_single_class_batch_has_no_triplet_and_gives_a_connected_zero():
    z1, z2, _ = _case_inputs()
    z1.requires_grad_()
    same = torch.zeros(len(z1), dtype=torch.long)
    loss = TwoViewObjective("triplet", 0.2, use_labels=True)(z1, z2, labels=same)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(z1.grad, torch.zeros_like(z1))


# --- two real processes (gloo) against one process on the concatenated batch ------------------

WORLD, BATCH, DIM = 2, 4, 5
# Labels repeat across the two ranks' halves, so masking and label positives cross the boundary;
# rank 0 holds 2 samples of class 0, rank 1 one: uneven positive counts under use_labels.
_DIST_LABELS = torch.tensor([0, 1, 0, 2, 3, 1, 0, 4])
_DIST_CASES = list(NEW_CASES)


def _dist_inputs():
    generator = torch.Generator().manual_seed(17)
    z1 = torch.randn(WORLD * BATCH, DIM, generator=generator, dtype=torch.float64)
    return z1, z1 + 0.7 * torch.randn(WORLD * BATCH, DIM, generator=generator, dtype=torch.float64)


def _loss_and_grads(case, z1, z2, labels, gather):
    kwargs, _ = NEW_CASES[case]
    objective = TwoViewObjective(**kwargs, gather_distributed=gather)
    z1, z2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    loss = objective(z1, z2, labels=labels if objective.uses_labels else None)
    loss.backward()
    return loss.detach(), z1.grad, z2.grad


def _worker(rank: int) -> dict:
    by_case = {}
    rows = slice(rank * BATCH, (rank + 1) * BATCH)
    z1, z2 = _dist_inputs()
    for case in _DIST_CASES:
        loss, grad1, grad2 = _loss_and_grads(case, z1[rows], z2[rows], _DIST_LABELS[rows], gather=True)
        dist.all_reduce(loss)  # DDP averages over the ranks: do the same for the loss and inputs
        by_case[case] = (loss / WORLD, grad1 / WORLD, grad2 / WORLD)
    return by_case


def test_new_objectives_on_two_processes_equal_single_process(run_distributed):
    results = run_distributed(_worker, WORLD)
    z1, z2 = _dist_inputs()
    for case in _DIST_CASES:
        reference, grad1, grad2 = _loss_and_grads(case, z1, z2, _DIST_LABELS, gather=False)
        assert grad1.abs().sum() > 0, case
        for rank in range(WORLD):
            rows = slice(rank * BATCH, (rank + 1) * BATCH)
            loss, got1, got2 = results[rank][case]
            assert torch.allclose(loss, reference, atol=1e-10), (case, loss, reference)
            assert torch.allclose(got1, grad1[rows], atol=1e-10), case
            assert torch.allclose(got2, grad2[rows], atol=1e-10), case
