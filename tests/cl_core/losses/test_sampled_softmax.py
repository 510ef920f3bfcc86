"""sampled_softmax.py: the logQ-corrected in-batch softmax against a naive loop, an exact value
and its invariances (the 2-process check is in test_distributed_losses.py)."""

import math

import pytest
import torch
import torch.nn.functional as F

from cl_core.config import build_config
from cl_core.losses import MultipleNegativesRankingLoss, SampledSoftmaxLoss, build_loss, build_objective


def naive_sampled_softmax(users, items, temperature, log_q=None, item_ids=None, user_ids=None):
    """Row by row: user i against every item j of the batch, logit cos(u_i, v_j) / t - log q_j;
    a column j != i is skipped when it holds row i's item, or (with user ids) an item that row
    i's user has in any row of the batch."""
    batch = users.shape[0]
    total = 0.0
    for i in range(batch):
        known = set()
        if item_ids is not None:
            known = {int(item_ids[k]) for k in range(batch) if user_ids is not None and user_ids[k] == user_ids[i]}
            known.add(int(item_ids[i]))
        logits = []
        for j in range(batch):
            if j != i and item_ids is not None and int(item_ids[j]) in known:
                continue
            logit = F.cosine_similarity(users[i], items[j], dim=0) / temperature
            if log_q is not None:
                logit = logit - log_q[j]
            logits.append((j, logit))
        positive = next(logit for j, logit in logits if j == i)
        total = total - positive + torch.logsumexp(torch.stack([logit for _, logit in logits]), dim=0)
    return total / batch


def _batch(batch: int, dim: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    users = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    items = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    log_q = torch.log(torch.rand(batch, generator=generator, dtype=torch.float64))
    return users, items, log_q


@pytest.mark.parametrize("batch", [1, 4, 9])
@pytest.mark.parametrize("temperature", [0.05, 1.0])
@pytest.mark.parametrize("corrected", [False, True])
def test_matches_the_naive_loop(batch, temperature, corrected):
    users, items, log_q = _batch(batch, 6, batch)
    log_q = log_q if corrected else None
    ours = SampledSoftmaxLoss(temperature, gather_distributed=False)(users, items, log_q)
    assert torch.allclose(ours, naive_sampled_softmax(users, items, temperature, log_q), atol=1e-10)


@pytest.mark.parametrize("with_users", [False, True])
def test_masking_of_known_positives_matches_the_naive_loop(with_users):
    users, items, log_q = _batch(8, 5, 3)
    item_ids = torch.tensor([4, 7, 4, 1, 9, 7, 4, 2])  # item 4 three times, 7 twice
    user_ids = torch.tensor([0, 1, 2, 0, 3, 2, 5, 5]) if with_users else None  # user 0 has 4 and 1, user 2 has 4 and 7
    items[2], items[6] = items[0], items[0]  # the same item has the same vector
    items[5] = items[1]
    loss = SampledSoftmaxLoss(0.2, gather_distributed=False)
    ours = loss(users, items, log_q, item_ids=item_ids, user_ids=user_ids)
    expected = naive_sampled_softmax(users, items, 0.2, log_q, item_ids, user_ids)
    assert torch.allclose(ours, expected, atol=1e-10)
    assert not torch.allclose(ours, loss(users, items, log_q), atol=1e-3)  # the masking did something


def test_exact_value_of_a_two_row_batch():
    # u = v = identity, t = 1, q = (1/2, 1/4): row 0 logits (1 + ln 2, ln 4), row 1 (ln 2, 1 + ln 4),
    # so the loss is ((ln(e + 2) - 1) + (ln(e + 1/2) - 1)) / 2.
    eye = torch.eye(2, dtype=torch.float64)
    log_q = torch.log(torch.tensor([0.5, 0.25], dtype=torch.float64))
    got = SampledSoftmaxLoss(1.0, gather_distributed=False)(eye, eye, log_q)
    expected = (math.log(math.e + 2) + math.log(math.e + 0.5)) / 2 - 1
    assert got.item() == pytest.approx(expected, abs=1e-12)


def test_the_correction_is_invariant_to_a_constant_factor_in_q_and_to_vector_lengths():
    users, items, log_q = _batch(7, 4, 5)
    loss = SampledSoftmaxLoss(0.1, gather_distributed=False)
    reference = loss(users, items, log_q)
    assert torch.allclose(loss(users, items, log_q + math.log(1000.0)), reference, atol=1e-10)  # counts, not shares
    uniform = torch.full_like(log_q, math.log(1 / 7))
    assert torch.allclose(loss(users, items, uniform), loss(users, items), atol=1e-10)  # uniform q: no correction
    assert torch.allclose(loss(3.0 * users, 0.5 * items, log_q), reference, atol=1e-10)


def test_without_correction_it_is_one_directional_mnrl():
    users, items, _ = _batch(6, 5, 8)
    ours = SampledSoftmaxLoss(0.05, gather_distributed=False)(users, items)
    mnrl = MultipleNegativesRankingLoss(1 / 0.05, symmetric=False, gather_distributed=False)(users, items)
    assert torch.allclose(ours, mnrl, atol=1e-10)


def test_bad_inputs_are_refused_with_the_argument_named():
    loss = SampledSoftmaxLoss(0.1, gather_distributed=False)
    users, items, log_q = _batch(4, 3, 1)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SampledSoftmaxLoss(0.0)
    with pytest.raises(ValueError, match="users and items"):
        loss(users, items[:3])
    with pytest.raises(ValueError, match="log_q must have shape"):
        loss(users, items, log_q[:2])
    with pytest.raises(ValueError, match="item_ids must be an integer"):
        loss(users, items, item_ids=torch.zeros(4))
    with pytest.raises(ValueError, match="needs item_ids"):
        loss(users, items, user_ids=torch.arange(4))


def test_the_objectives_table_builds_it_for_interactions_only():
    cfg = build_config({"data": {"modality": "interactions"}, "loss": {"name": "sampled_softmax", "temperature": 0.07}})
    module = build_objective(cfg.loss, "interactions", gather_distributed=False)
    assert isinstance(module, SampledSoftmaxLoss) and module.temperature == 0.07 and module.gather_distributed is False
    assert isinstance(build_loss("sampled_softmax", temperature=0.1), SampledSoftmaxLoss)
    with pytest.raises(ValueError, match="does not train image data"):
        build_objective({"name": "sampled_softmax"}, "image")
    with pytest.raises(ValueError, match="does not train interactions data"):
        build_objective({"name": "ntxent"}, "interactions")
