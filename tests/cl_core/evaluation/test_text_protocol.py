"""The text protocol on hand-placed embeddings: query i is e_i, its second sentence e_i + a_i e_4,
so retrieval is perfect and the cosine falls as a_i grows (STS Spearman 1 against falling gold)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from cl_core.config import EvalConfig
from cl_core.evaluation import text_protocol
from cl_core.evaluation.sts import sts_correlation

OFFSETS = (0.1, 0.5, 1.0, 2.0)
GOLD = (5.0, 4.0, 3.0, 2.0)


def _vector(text: str) -> np.ndarray:
    kind, i = text[0], int(text[1:])
    vector = np.zeros(5, np.float32)
    vector[i] = 1.0
    if kind == "d":
        vector[4] = OFFSETS[i]
    return vector


def _embed(texts: list[str]) -> np.ndarray:
    return np.stack([_vector(text) for text in texts])


class _Pairs:
    """The part of a DatasetVersion the protocol reads."""

    name, version, kind = "pairs", "v2", "text"

    def __init__(self, tables: dict[str, pa.Table]):
        self.tables = tables
        self.splits = {split: table.num_rows for split, table in tables.items()}

    def read(self, split: str, columns: list[str]) -> pa.Table:
        return self.tables[split].select(columns)


def _table(scores, extra_unpaired: bool = False) -> pa.Table:
    text1, text2 = [f"q{i}" for i in range(4)], [f"d{i}" for i in range(4)]
    if extra_unpaired:  # a lone sentence (no second one) is no pair
        text1, text2, scores = [*text1, "q0"], [*text2, None], [*scores, 1.0]
    return pa.table({"text1": text1, "text2": pa.array(text2, pa.string()), "score": pa.array(scores, pa.float64())})


def _dataset(scores=GOLD, **kwargs) -> _Pairs:
    return _Pairs({"train": _table(GOLD), "val": _table(scores), "test": _table(scores, **kwargs)})


def test_both_splits_are_scored_and_val_is_required():
    assert text_protocol.scored_splits(_dataset()) == ["val", "test"]
    no_test = _Pairs({"train": _table(GOLD), "val": _table(GOLD), "test": _table(GOLD).slice(0, 0)})
    assert text_protocol.scored_splits(no_test) == ["val"]
    no_val = _Pairs({"train": _table(GOLD), "val": _table(GOLD).slice(0, 0), "test": _table(GOLD)})
    with pytest.raises(ValueError, match=r"pairs@v2 has no 'val' rows .*the promotion gate reads the validation split"):
        text_protocol.scored_splits(no_val)
    with pytest.raises(ValueError, match=r"eval.split \('test'\) is no longer read"):
        EvalConfig(split="test")


def _metrics(dataset, cfg, split="test"):
    return text_protocol.split_scores(_embed, dataset, split, cfg).metrics


def test_text_metrics_of_scored_pairs():
    metrics = _metrics(_dataset(extra_unpaired=True), EvalConfig())
    cosines = [1 / np.sqrt(1 + a * a) for a in OFFSETS]
    assert metrics["sts_spearman"] == pytest.approx(1.0)
    assert metrics["sts_pearson"] == pytest.approx(np.corrcoef(cosines, GOLD)[0, 1], abs=1e-6)
    assert metrics["sts_pearson"] < 1.0
    for key in ("recall_at_1", "recall_at_5", "recall_at_10", "mrr_at_10"):
        assert metrics[key] == pytest.approx(1.0)
    assert metrics["retrieval_queries"] == 4.0 and metrics["eval_pairs"] == 4.0  # the unpaired row is left out


def test_retrieval_min_score_keeps_only_well_scored_queries():
    metrics = _metrics(_dataset(), EvalConfig(retrieval_min_score=3.5))
    assert metrics["retrieval_queries"] == 2.0 and metrics["eval_pairs"] == 4.0


def test_pair_metrics_rank_the_right_sentence_among_all_second_sentences():
    def swapped(texts):  # query 0 now sits on second sentence 1, and the other way round
        return _embed([{"q0": "q1", "q1": "q0"}.get(text, text) for text in texts])

    metrics = text_protocol.pair_metrics(swapped, [f"q{i}" for i in range(4)], [f"d{i}" for i in range(4)],
                                         np.full(4, np.nan))
    assert metrics["recall_at_1"] == pytest.approx(0.5)  # queries 2 and 3 find theirs first
    # queries 0 and 1: their sentence ties at cosine 0 with two others, and a tie ranks last (4th)
    assert metrics["mrr_at_10"] == pytest.approx((0.25 + 0.25 + 1 + 1) / 4)
    assert "sts_spearman" not in metrics  # no gold score


def test_without_gold_scores_the_gate_reads_mrr():
    dataset = _dataset(scores=[None] * 4)
    evaluated = text_protocol.evaluate_text(_embed, dataset, EvalConfig())
    assert evaluated["primary_metric"] == "mrr_at_10" and "val.sts_spearman" not in evaluated["metrics"]
    assert sorted(evaluated["intervals"]) == ["test.mrr_at_10", "val.mrr_at_10"]
    gate = text_protocol.primary_score(_embed, dataset, EvalConfig())
    assert (gate.metric, gate.value, gate.split) == ("mrr_at_10", pytest.approx(1.0), "val")


def test_evaluate_text_scores_val_and_test_next_to_the_pretrained_encoder():
    def pretrained(texts):  # every second sentence the same: retrieval is a tie, the cosines order reversed
        return np.stack([_vector(text) if text[0] == "q" else np.array([1, 1, 1, 1, 0], np.float32) for text in texts])

    evaluated = text_protocol.evaluate_text(_embed, _dataset(), EvalConfig(), pretrained)
    assert evaluated["splits"] == ["val", "test"] and evaluated["primary_metric"] == "sts_spearman"
    assert evaluated["metrics"]["val.sts_spearman"] == evaluated["metrics"]["test.sts_spearman"] == pytest.approx(1.0)
    assert sorted(evaluated["intervals"]) == ["test.sts_spearman", "val.sts_spearman"]
    baseline = evaluated["baseline"]
    assert evaluated["baseline_split"] == "test"
    assert sorted(baseline) == ["pretrained_mrr_at_10", "pretrained_recall_at_1", "pretrained_recall_at_10",
                                "pretrained_recall_at_5", "pretrained_sts_pearson", "pretrained_sts_spearman"]
    assert baseline["pretrained_sts_spearman"] == pytest.approx(
        sts_correlation(pretrained([f"q{i}" for i in range(4)]), pretrained(["d0"] * 4), GOLD)["spearman"])
    assert text_protocol.evaluate_text(_embed, _dataset(), EvalConfig())["baseline"] == {}
    gate = text_protocol.primary_score(_embed, _dataset(), EvalConfig())
    assert (gate.metric, gate.value) == ("sts_spearman", pytest.approx(1.0))


def test_the_gate_reads_val_only():
    """A model perfect on test but reversed on val scores -1 at the gate."""
    reversed_val = _Pairs({"train": _table(GOLD), "val": _table(GOLD[::-1]), "test": _table(GOLD)})
    evaluated = text_protocol.evaluate_text(_embed, reversed_val, EvalConfig())
    assert evaluated["metrics"]["test.sts_spearman"] == pytest.approx(1.0)
    assert evaluated["metrics"]["val.sts_spearman"] == pytest.approx(-1.0)
    assert text_protocol.primary_score(_embed, reversed_val, EvalConfig()).value == pytest.approx(-1.0)


def test_spearman_interval_is_seeded_and_covers_the_value():
    rng = np.random.default_rng(3)
    cosines = rng.normal(size=200)
    gold = cosines + rng.normal(scale=1.0, size=200)
    first, again = text_protocol._spearman_interval(cosines, gold), text_protocol._spearman_interval(cosines, gold)
    assert first == again
    from cl_core.evaluation.sts import spearman

    assert spearman(cosines, gold) in first and first.high - first.low < 0.3


def test_summary_lines_name_each_split_and_the_interval():
    evaluated = text_protocol.evaluate_text(_embed, _dataset(), EvalConfig())
    spearman_line = text_protocol.summary_lines(evaluated)[0]
    assert spearman_line.split()[:4] == ["STS", "Spearman", "val", "1.0000"]
    assert "test 1.0000 [" in spearman_line
    no_test = _Pairs({"train": _table(GOLD), "val": _table(GOLD), "test": _table(GOLD).slice(0, 0)})
    assert "(no test split)" in text_protocol.summary_lines(text_protocol.evaluate_text(_embed, no_test, EvalConfig()))[0]
