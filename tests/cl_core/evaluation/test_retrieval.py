import math

import numpy as np
import pytest
import torch

from cl_core.evaluation import retrieval_scores
from cl_core.evaluation.retrieval import target_ranks


def naive_scores(queries, corpus, targets, ks, mrr_at):
    """One query at a time: cosine to every corpus row; the target's rank counts every item
    scoring at least as high as it (ties against the target)."""
    recall = {k: 0.0 for k in ks}
    mrr = 0.0
    for query, target in zip(queries, targets, strict=True):
        sims = [float(query @ row / (np.linalg.norm(query) * np.linalg.norm(row))) for row in corpus]
        rank = sum(s >= sims[target] for s in sims)
        for k in ks:
            recall[k] += rank <= k
        mrr += 1.0 / rank if rank <= mrr_at else 0.0
    n = len(targets)
    return {**{f"recall_at_{k}": v / n for k, v in recall.items()}, f"mrr_at_{mrr_at}": mrr / n}


def unit(degrees):
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


def hand_built_case():
    """Corpus at 0, 30, 60, 90 and 180 degrees; four queries whose target ranks are 1, 3, 5, 5."""
    corpus = np.array([[1.0, 0.0], unit(30), unit(60), [0.0, 1.0], [-1.0, 0.0]])
    queries = np.array([
        [2.0, 0.0],  # target 0 (0 deg) is the nearest: rank 1
        [1.0, 0.0],  # target 2 (60 deg) comes after 0 and 30 deg: rank 3
        [0.0, 1.0],  # target 4 (180 deg) ties with 0 deg at cosine 0, both last: rank 5
        [-1.0, 0.0],  # target 0 (0 deg) is opposite: rank 5
    ])
    return queries, corpus, np.array([0, 2, 4, 0])


def test_ranks_on_hand_built_case():
    queries, corpus, targets = hand_built_case()
    assert target_ranks(queries, corpus, targets).tolist() == [1, 3, 5, 5]


def test_exact_values_on_hand_built_case():
    queries, corpus, targets = hand_built_case()
    got = retrieval_scores(queries, corpus, targets, ks=(1, 3, 5), mrr_at=3)
    assert got == pytest.approx({"recall_at_1": 0.25, "recall_at_3": 0.5, "recall_at_5": 1.0, "mrr_at_3": (1 + 1 / 3) / 4})
    default = retrieval_scores(queries, corpus, targets)
    assert list(default) == ["recall_at_1", "recall_at_5", "recall_at_10", "mrr_at_10"]
    assert default == pytest.approx({
        "recall_at_1": 0.25, "recall_at_5": 1.0, "recall_at_10": 1.0, "mrr_at_10": (1 + 1 / 3 + 1 / 5 + 1 / 5) / 4,
    })


def test_collapsed_embeddings_get_no_credit_for_ties():
    corpus = np.ones((20, 4))
    got = retrieval_scores(np.ones((3, 4)), corpus, np.array([0, 7, 19]), ks=(1, 20))
    assert got == {"recall_at_1": 0.0, "recall_at_20": 1.0, "mrr_at_10": 0.0}


@pytest.mark.parametrize("q,c,dim,seed", [(1, 1, 3, 0), (7, 30, 5, 1), (64, 200, 16, 2)])
@pytest.mark.parametrize("batch_size", [1, 5, 1024])
def test_matches_naive_reference(q, c, dim, seed, batch_size):
    rng = np.random.default_rng(seed)
    # Queries near their targets, so ranks spread over 1..c instead of all being large.
    corpus = rng.normal(size=(c, dim))
    targets = rng.integers(0, c, size=q)
    queries = corpus[targets] + 1.5 * rng.normal(size=(q, dim))
    ks = (1, 3, 10, 50)
    got = retrieval_scores(queries, corpus, targets, ks=ks, mrr_at=10, batch_size=batch_size)
    assert got == pytest.approx(naive_scores(queries, corpus, targets, ks, 10), abs=1e-12)


def test_invariant_to_row_scaling_and_accepts_tensors():
    rng = np.random.default_rng(4)
    corpus, queries, targets = rng.normal(size=(40, 8)), rng.normal(size=(10, 8)), rng.integers(0, 40, size=10)
    base = retrieval_scores(queries, corpus, targets)
    scaled = retrieval_scores(queries * rng.uniform(0.1, 10, size=(10, 1)), corpus * rng.uniform(0.1, 10, size=(40, 1)), targets)
    assert scaled == pytest.approx(base)
    as_tensors = retrieval_scores(torch.tensor(queries), torch.tensor(corpus), torch.tensor(targets))
    assert as_tensors == pytest.approx(base)


def test_rejects_bad_inputs():
    queries, corpus, targets = hand_built_case()
    with pytest.raises(ValueError, match="width"):
        retrieval_scores(queries, corpus[:, :1], targets)
    with pytest.raises(ValueError, match="targets must be"):
        retrieval_scores(queries, corpus, targets[:3])
    with pytest.raises(ValueError, match="index the corpus"):
        retrieval_scores(queries, corpus, np.array([0, 1, 2, 5]))
    with pytest.raises(ValueError, match="index the corpus"):
        retrieval_scores(queries, corpus, np.array([0, 1, 2, -1]))
    with pytest.raises(ValueError, match="integer"):
        retrieval_scores(queries, corpus, targets.astype(float))
    with pytest.raises(ValueError, match="ks"):
        retrieval_scores(queries, corpus, targets, ks=(0,))
    with pytest.raises(ValueError, match="mrr_at"):
        retrieval_scores(queries, corpus, targets, mrr_at=0)
    with pytest.raises(ValueError, match="empty"):
        retrieval_scores(queries[:0], corpus, targets[:0])
    with pytest.raises(ValueError, match="corpus is empty"):
        retrieval_scores(queries, corpus[:0], targets)
