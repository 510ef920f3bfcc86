"""The ranking protocol on a hand-built interactions version: 7 users, 25 items; users 3-6 make
items 5 and 6 the most popular; user 0 holds out item 5, user 1 item 6, user 2 nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cl_core.config import EvalConfig
from cl_core.datasets.sources.interactions.data import Entities, InteractionData, Interactions
from cl_core.evaluation import ranking_protocol
from cl_core.evaluation.ranking import ranking_metrics

NUM_USERS, NUM_ITEMS = 7, 25
CFG = EvalConfig(mf={"dim": 4, "epochs": 2})


def _interactions(pairs: list[tuple[int, int]]) -> Interactions:
    users, items = (np.array(column, np.int64) for column in zip(*pairs, strict=True)) if pairs else ([], [])
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    return Interactions(users, items, np.arange(len(users), dtype=np.float64), None)


def _entities(kind: str, count: int) -> Entities:
    return Entities(kind, np.array([f"{kind[0]}{i}" for i in range(count)], dtype=object), (None,) * count, {}, {}, {})


def _data(test: list[tuple[int, int]] = ((0, 5), (1, 6))) -> InteractionData:
    train = [(0, 0), (0, 1), (1, 2), (2, 3)] + [(user, item) for user in range(3, 7) for item in (5, 6)]
    return InteractionData("toy", "v1", _entities("users", NUM_USERS), _entities("items", NUM_ITEMS),
                           _interactions(train), _interactions([(0, 4)]), _interactions(list(test)))


def _oracle() -> tuple[torch.Tensor, torch.Tensor]:
    """User vectors pointing at their test item; item vectors one-hot."""
    users = torch.zeros(NUM_USERS, NUM_ITEMS)
    users[0, 5], users[1, 6] = 1.0, 1.0
    return users, torch.eye(NUM_ITEMS)


def test_evaluation_pairs_are_seen_train_and_val_then_test():
    (seen_users, seen_items), (test_users, test_items) = ranking_protocol.evaluation_pairs(_data())
    assert sorted(zip(seen_users.tolist(), seen_items.tolist(), strict=True))[:5] == [(0, 0), (0, 1), (0, 4), (1, 2), (2, 3)]
    assert test_users.tolist() == [0, 1] and test_items.tolist() == [5, 6]
    with pytest.raises(ValueError, match="toy@v1 has no 'test' interactions to evaluate on"):
        ranking_protocol.evaluation_pairs(_data(test=[]))


def test_vector_metrics_of_an_oracle():
    metrics = ranking_protocol.vector_metrics(*_oracle(), _data())
    assert metrics["users"] == 2
    for key in ("recall_at_10", "recall_at_20", "ndcg_at_10", "ndcg_at_20", "mrr"):
        assert metrics[key] == pytest.approx(1.0), key


def test_baselines_most_popular_breaks_the_favourites_tie_by_index():
    baseline = ranking_protocol.baseline_metrics(_data(), CFG)
    assert {key.split("_", 1)[0] for key in baseline} == {"popular", "mf"}
    assert "popular_users" not in baseline and "mf_users" not in baseline
    # items 5 and 6 tie on popularity (4 users each), the lower index first: user 0's item 5
    # ranks 1st, user 1's item 6 2nd
    assert baseline["popular_recall_at_10"] == pytest.approx(1.0)
    assert baseline["popular_mrr"] == pytest.approx((1 + 1 / 2) / 2)
    assert baseline["popular_ndcg_at_10"] == pytest.approx((1 + 1 / np.log2(3)) / 2)
    assert all(0.0 <= value <= 1.0 for value in baseline.values())


def test_evaluate_recommender_embeds_every_entity_through_the_model(monkeypatch):
    users, items = _oracle()

    def entity_inputs(dataset, kind):
        ids = [f"{kind[0]}{i}" for i in range(NUM_USERS if kind == "users" else NUM_ITEMS)]
        return ids, [None] * len(ids), [{kind[:-1]: value} for value in ids]

    def embed(inputs):  # what a pyfunc does with one dict per entity
        return np.stack([(users if "user" in row else items)[int(next(iter(row.values()))[1:])].numpy() for row in inputs])

    monkeypatch.setattr(ranking_protocol, "entity_inputs", entity_inputs)
    vectors = ranking_protocol.entity_vectors(embed, "unused")
    assert vectors[0].dtype == torch.float32 and torch.equal(vectors[0], users) and torch.equal(vectors[1], items)

    data = _data()
    evaluated = ranking_protocol.evaluate_recommender(embed, "unused", data, CFG)
    assert evaluated["split"] == "test" and evaluated["primary_metric"] == "ndcg_at_10"
    assert "users" not in evaluated["metrics"] and evaluated["metrics"]["test_users"] == 2
    expected = ranking_metrics(lambda chunk: users[chunk] @ items.T, NUM_USERS, NUM_ITEMS,
                               *ranking_protocol.evaluation_pairs(data))
    assert evaluated["metrics"]["ndcg_at_10"] == pytest.approx(expected["ndcg_at_10"]) == pytest.approx(1.0)
    assert evaluated["baseline"] == pytest.approx(ranking_protocol.baseline_metrics(data, CFG))
    assert ranking_protocol.primary_score(embed, "unused", data) == pytest.approx(1.0)
