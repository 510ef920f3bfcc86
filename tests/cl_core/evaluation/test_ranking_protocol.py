"""The ranking protocol on a hand-built interactions version: 7 users, 25 items; users 3-6 make
items 5 and 6 the most popular; user 0 holds out item 4 in val and item 5 in test, user 1 item 6
in test, user 2 nothing. Val is scored with train as the seen items and history, test with train
and val; the baselines fit on train and val and are scored on test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cl_core.config import EvalConfig
from cl_core.datasets.sources.interactions.data import Entities, InteractionData, Interactions
from cl_core.evaluation import ranking_protocol
from cl_core.evaluation.intervals import mean_interval
from cl_core.evaluation.ranking import ranking_metrics
from cl_core.evaluation.split_scores import GateScore

NUM_USERS, NUM_ITEMS = 7, 25
CFG = EvalConfig(mf={"dim": 4, "epochs": 2})
HELD_OUT = {"val": {0: 4}, "test": {0: 5, 1: 6}}  # user -> its held-out item


def _interactions(pairs: list[tuple[int, int]]) -> Interactions:
    users, items = (np.array(column, np.int64) for column in zip(*pairs, strict=True)) if pairs else ([], [])
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    return Interactions(users, items, np.arange(len(users), dtype=np.float64), None)


def _entities(kind: str, count: int) -> Entities:
    return Entities(kind, np.array([f"{kind[0]}{i}" for i in range(count)], dtype=object), (None,) * count, {}, {}, {})


def _data(val: list[tuple[int, int]] = ((0, 4),), test: list[tuple[int, int]] = ((0, 5), (1, 6))) -> InteractionData:
    train = [(0, 0), (0, 1), (1, 2), (2, 3)] + [(user, item) for user in range(3, 7) for item in (5, 6)]
    return InteractionData("toy", "v1", _entities("users", NUM_USERS), _entities("items", NUM_ITEMS),
                           _interactions(train), _interactions(list(val)), _interactions(list(test)))


def _oracle(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """User vectors pointing at their held-out item of `split`; item vectors one-hot."""
    users = torch.zeros(NUM_USERS, NUM_ITEMS)
    for user, item in HELD_OUT[split].items():
        users[user, item] = 1.0
    return users, torch.eye(NUM_ITEMS)


def test_evaluation_pairs_of_val_see_train_and_of_test_see_train_and_val():
    (seen_users, seen_items), (val_users, val_items) = ranking_protocol.evaluation_pairs(_data(), "val")
    assert sorted(zip(seen_users.tolist(), seen_items.tolist(), strict=True))[:4] == [(0, 0), (0, 1), (1, 2), (2, 3)]
    assert val_users.tolist() == [0] and val_items.tolist() == [4]
    (seen_users, seen_items), (test_users, test_items) = ranking_protocol.evaluation_pairs(_data(), "test")
    assert sorted(zip(seen_users.tolist(), seen_items.tolist(), strict=True))[:5] == [(0, 0), (0, 1), (0, 4), (1, 2), (2, 3)]
    assert test_users.tolist() == [0, 1] and test_items.tolist() == [5, 6]
    with pytest.raises(ValueError, match="toy@v1 has no 'test' interactions to evaluate on$"):
        ranking_protocol.evaluation_pairs(_data(test=[]), "test")
    with pytest.raises(ValueError, match="toy@v1 has no 'val' interactions to evaluate on; .*val_from"):
        ranking_protocol.evaluation_pairs(_data(val=[]), "val")


def test_vector_ranking_of_an_oracle():
    ranking = ranking_protocol.vector_ranking(*_oracle("test"), _data(), "test")
    assert ranking.metrics["users"] == 2 and ranking.users.tolist() == [0, 1]
    for key in ("recall_at_10", "recall_at_20", "ndcg_at_10", "ndcg_at_20", "mrr"):
        assert ranking.metrics[key] == pytest.approx(1.0), key


def test_baselines_fit_on_train_and_val_and_rank_test():
    rankings = ranking_protocol.baseline_rankings(_data(), CFG)
    baseline = ranking_protocol.baseline_metrics(rankings)
    assert {key.split("_", 1)[0] for key in baseline} == {"popular", "mf"}
    assert "popular_users" not in baseline and "mf_users" not in baseline
    assert rankings["popular"].users.tolist() == [0, 1]  # the test users
    # items 5 and 6 tie on popularity (4 users each), the lower index first: user 0's item 5
    # ranks 1st, user 1's item 6 2nd
    assert baseline["popular_recall_at_10"] == pytest.approx(1.0)
    assert baseline["popular_mrr"] == pytest.approx((1 + 1 / 2) / 2)
    assert baseline["popular_ndcg_at_10"] == pytest.approx((1 + 1 / np.log2(3)) / 2)
    assert all(0.0 <= value <= 1.0 for value in baseline.values())


def _fake_model(monkeypatch, data: InteractionData):
    """entity_inputs whose user rows say which splits their history came from, and an embed that
    gives a user the oracle vector of the split it would be scored on with that history (val
    from train alone, test from train and val): only the right histories score 1 on both."""
    seen_by = {("train",): "val", ("train", "val"): "test"}
    calls = []

    def entity_inputs(dataset, kind, history_splits=None):
        calls.append((kind, history_splits))
        count = NUM_USERS if kind == "users" else NUM_ITEMS
        rows = [{kind[:-1]: f"{kind[0]}{i}"} for i in range(count)]
        if kind == "users":
            for row in rows:
                row["history"] = list(history_splits or ("train", "val"))
        return [next(iter(row.values())) for row in rows], [None] * count, rows

    def embed(inputs):  # what a pyfunc does with one dict per entity
        out = []
        for row in inputs:
            if "user" in row:
                out.append(_oracle(seen_by[tuple(row["history"])])[0][int(row["user"][1:])].numpy())
            else:
                out.append(torch.eye(NUM_ITEMS)[int(row["item"][1:])].numpy())
        return np.stack(out)

    monkeypatch.setattr(ranking_protocol, "entity_inputs", entity_inputs)
    monkeypatch.setattr(ranking_protocol, "load_interactions", lambda dataset: data)
    return embed, calls


def test_evaluate_scores_val_and_test_with_their_own_histories_and_intervals(monkeypatch):
    data = _data()
    embed, calls = _fake_model(monkeypatch, data)
    evaluated = ranking_protocol.evaluate(embed, "unused", CFG)
    assert calls == [("items", None), ("users", ("train",)), ("users", ("train", "val"))]
    assert evaluated["splits"] == ["val", "test"] and evaluated["primary_metric"] == "ndcg_at_10"
    metrics = evaluated["metrics"]
    assert metrics["val.users"] == 1 and metrics["test.users"] == 2
    assert metrics["val.ndcg_at_10"] == pytest.approx(1.0) and metrics["test.ndcg_at_10"] == pytest.approx(1.0)
    expected = ranking_metrics(lambda chunk: _oracle("test")[0][chunk] @ torch.eye(NUM_ITEMS).T, NUM_USERS, NUM_ITEMS,
                               *ranking_protocol.evaluation_pairs(data, "test"))
    assert {key[len("test."):]: value for key, value in metrics.items() if key.startswith("test.")} == pytest.approx(expected)
    assert evaluated["intervals"] == {"val.ndcg_at_10": [1.0, 1.0], "test.ndcg_at_10": [1.0, 1.0]}
    rankings = ranking_protocol.baseline_rankings(data, CFG)
    assert evaluated["baseline"] == pytest.approx(ranking_protocol.baseline_metrics(rankings))
    popular = rankings["popular"].per_user["ndcg_at_10"]
    interval = mean_interval(popular)
    assert evaluated["baseline_intervals"]["popular_ndcg_at_10"] == [interval.low, interval.high]
    assert interval.low <= evaluated["baseline"]["popular_ndcg_at_10"] <= interval.high


def test_the_gate_scores_val_alone(monkeypatch):
    data = _data(test=[(0, 7)])  # a test the oracle misses: the gate does not read it
    embed, calls = _fake_model(monkeypatch, data)
    score = ranking_protocol.gate_score(embed, "unused", CFG)
    assert score == GateScore("ndcg_at_10", pytest.approx(1.0), score.interval) and score.split == "val"
    assert (score.interval.low, score.interval.high) == (1.0, 1.0)
    assert ("users", ("train",)) in calls and ("users", ("train", "val")) not in calls
    assert GateScore.of(ranking_protocol.evaluate(embed, "unused", CFG)) == score
    monkeypatch.setattr(ranking_protocol, "load_interactions", lambda dataset: _data(val=[]))
    with pytest.raises(ValueError, match="no 'val' interactions"):
        ranking_protocol.gate_score(embed, "unused", CFG)


def test_summary_lines_name_the_split_of_each_number():
    evaluated = {
        "splits": ["val", "test"], "primary_metric": "ndcg_at_10",
        "metrics": {f"{split}.{key}": value for split, scale in (("val", 1.0), ("test", 2.0))
                    for key, value in (("ndcg_at_10", 0.05 * scale), ("recall_at_20", 0.1 * scale), ("mrr", 0.04 * scale))},
        "intervals": {"val.ndcg_at_10": [0.04, 0.06], "test.ndcg_at_10": [0.09, 0.11]},
        "baseline": {f"{name}_{key}": 0.01 for name in ("popular", "mf") for key in ("ndcg_at_10", "recall_at_20", "mrr")},
    }
    lines = ranking_protocol.summary_lines(evaluated)
    assert lines[0].split() == ["NDCG@10", "val", "0.0500", "[0.040,", "0.060]", "test", "0.1000", "[0.090,", "0.110]",
                                "most-popular", "0.0100", "BPR-MF", "0.0100", "(test)"]
    assert lines[1].split() == ["recall@20", "val", "0.1000", "test", "0.2000", "most-popular", "0.0100", "BPR-MF",
                                "0.0100", "(test)"]
    assert lines[2].startswith("  MRR ") and len({line.index("most-popular") for line in lines}) == 1
