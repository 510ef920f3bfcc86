"""The text evaluation protocol, on a dataset's sentence pairs of the validation split (what the
promotion gate reads) and of the test split (reported once; STS-B as shipped has none): STS
Spearman/Pearson of the cosine of each pair against its gold score (the scored pairs), and pair
retrieval (recall@1/5/10, MRR@10 of each query's second sentence among all distinct second
sentences of the split); the primary metric is STS Spearman, MRR@10 when the validation split
has no gold scores. Each split's primary metric comes with a 95 % bootstrap interval over its
pairs (Spearman) or its queries (MRR@10).

The model comes in as a callable `embed(texts) -> (N, D)`, so the protocol needs no registry:
the evaluate flow passes a loaded pyfunc's `predict`, and the pretrained encoder's own.

`evaluate` and `gate_score` are the entry points every protocol shares (the record's "protocol"
part, `cl_core.modalities`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.compute as pc

from cl_core.config import EvalConfig, ViewsConfig
from cl_core.datasets import DatasetVersion
from cl_core.evaluation.intervals import Interval, bootstrap_interval, mean_interval
from cl_core.evaluation.primary import primary_metric
from cl_core.evaluation.retrieval import rank_scores, reciprocal_ranks, target_ranks
from cl_core.evaluation.split_scores import GATE_SPLIT, SPLITS, GateScore, metric_lines, protocol_result
from cl_core.evaluation.sts import cosine_similarities, spearman, sts_correlation
from cl_core.modalities.text import TEXT

Embed = Callable[[list[str]], np.ndarray]  # texts -> (N, D)
COUNTS = ("eval_pairs", "retrieval_queries")  # metrics that count rows, not scores: no baseline of them
MRR_AT = 10


@dataclass(frozen=True)
class SplitScores:
    """One split's metrics and the interval of each metric that has one."""

    metrics: dict[str, float]
    intervals: dict[str, Interval]


def scored_splits(dataset: DatasetVersion) -> list[str]:
    """The splits the protocol scores: val and test where the dataset has rows in them; raises
    when it has no val rows (the gate reads val)."""
    splits = dataset.splits
    if not splits.get(GATE_SPLIT):
        raise ValueError(
            f"dataset {dataset.name}@{dataset.version} has no {GATE_SPLIT!r} rows (splits: {splits}); the promotion "
            "gate reads the validation split: name a dev/val file or split value, or re-ingest so that ingest "
            "carves one from train (data.val_fraction)")
    return [split for split in SPLITS if splits.get(split)]


def _spearman_interval(cosines: np.ndarray, gold: np.ndarray) -> Interval:
    # A resample is a multiset of pairs; its Spearman is recomputed from its own ranks.
    return bootstrap_interval(lambda rows: spearman(cosines[rows], gold[rows]),
                              len(gold))


def pair_scores(embed: Embed, text1: list[str], text2: list[str], scores: np.ndarray,
                retrieval_min_score: float | None = None) -> SplitScores:
    """The protocol on pairs (`scores` float, NaN where a pair has no gold score): "sts_spearman"
    (with its interval) and "sts_pearson" when two or more pairs are scored; "recall_at_*",
    "mrr_at_10" (with its interval) and "retrieval_queries" over the queries (every pair, or only
    those scored at least `retrieval_min_score`); "eval_pairs"."""
    embeddings1, embeddings2 = embed(text1), embed(text2)
    metrics: dict[str, float] = {}
    intervals: dict[str, Interval] = {}
    scored = ~np.isnan(scores)
    if scored.sum() >= 2:
        correlation = sts_correlation(embeddings1[scored], embeddings2[scored], scores[scored])
        metrics["sts_spearman"], metrics["sts_pearson"] = correlation["spearman"], correlation["pearson"]
        intervals["sts_spearman"] = _spearman_interval(
            cosine_similarities(embeddings1[scored], embeddings2[scored]), scores[scored])

    corpus_texts = sorted(set(text2))
    position = {text: i for i, text in enumerate(corpus_texts)}
    first_row: dict[str, int] = {}
    for row, text in enumerate(text2):  # one pass: list.index per text would be quadratic
        first_row.setdefault(text, row)
    corpus = embeddings2[[first_row[text] for text in corpus_texts]]
    queries = np.arange(len(text1))
    if retrieval_min_score is not None:
        queries = queries[scored & (np.nan_to_num(scores, nan=-np.inf) >= retrieval_min_score)]
    if len(queries):
        targets = np.array([position[text2[i]] for i in queries])
        ranks = target_ranks(embeddings1[queries], corpus, targets)  # (Q,): the corpus is scored once
        metrics.update(rank_scores(ranks, mrr_at=MRR_AT))
        intervals[f"mrr_at_{MRR_AT}"] = mean_interval(reciprocal_ranks(ranks, MRR_AT).numpy())
        metrics["retrieval_queries"] = float(len(queries))
    metrics["eval_pairs"] = float(len(text1))
    return SplitScores(metrics, intervals)


def pair_metrics(embed: Embed, text1: list[str], text2: list[str], scores: np.ndarray,
                 retrieval_min_score: float | None = None) -> dict[str, float]:
    """`pair_scores`' metrics alone."""
    return pair_scores(embed, text1, text2, scores, retrieval_min_score).metrics


def split_scores(embed: Embed, dataset: DatasetVersion, split: str, cfg: EvalConfig) -> SplitScores:
    """`pair_scores` of the pairs of `split` that have a second sentence."""
    pairs = dataset.read(split=split, columns=["text1", "text2", "score"])
    pairs = pairs.filter(pc.is_valid(pairs.column("text2")))
    if pairs.num_rows == 0:
        raise ValueError(f"dataset {dataset.name}@{dataset.version}: the {split!r} split has no sentence pairs to evaluate")
    scores = pairs.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
    return pair_scores(embed, pairs.column("text1").to_pylist(), pairs.column("text2").to_pylist(), scores,
                       cfg.retrieval_min_score)


def pretrained_baseline(metrics: dict[str, float]) -> dict[str, float]:
    """The pretrained encoder's metrics as the baseline: "pretrained_<metric>", counts left out."""
    return {f"pretrained_{key}": value for key, value in metrics.items() if key not in COUNTS}


def evaluate_text(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig,
                  pretrained: Embed | None = None) -> dict[str, Any]:
    """`protocol_result` of `embed` on the val and (where the dataset has one) test pairs, next
    to the encoder it was fine-tuned from (`pretrained`, on the last split scored: the reported
    one; none: an empty baseline)."""
    splits = scored_splits(dataset)
    scores = {split: split_scores(embed, dataset, split, cfg) for split in splits}
    primary = primary_metric(TEXT.name, scores[GATE_SPLIT].metrics)
    reported = splits[-1]
    baseline = (pretrained_baseline(split_scores(pretrained, dataset, reported, cfg).metrics)
                if pretrained is not None else {})
    return protocol_result(
        primary, {split: score.metrics for split, score in scores.items()},
        {split: {name: interval for name, interval in score.intervals.items() if name == primary}
         for split, score in scores.items()},
        baseline, baseline_split=reported)


def primary_score(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig) -> GateScore:
    """The promotion gate's score of `embed` on `dataset`: its primary metric on the validation split."""
    scored_splits(dataset)
    score = split_scores(embed, dataset, GATE_SPLIT, cfg)
    name = primary_metric(TEXT.name, score.metrics)
    return GateScore(name, score.metrics[name], score.intervals.get(name))


def evaluate(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig, views_cfg: ViewsConfig | None = None,
             report: Callable[[int, int, str], None] | None = None, *, pretrained: Embed | None = None) -> dict[str, Any]:
    """`evaluate_text`; no views are made and no steps reported."""
    return evaluate_text(embed, dataset, cfg, pretrained)


gate_score = primary_score


def summary_lines(evaluated: dict[str, Any]) -> list[str]:
    """What `clpipe run` prints of an evaluation: each metric the splits gave, on each split
    (the primary metric with its interval), next to the pretrained encoder's."""
    return metric_lines(evaluated, (("sts_spearman", "STS Spearman"), ("sts_pearson", "STS Pearson"),
                                    ("recall_at_1", "recall@1"), ("recall_at_10", "recall@10"), ("mrr_at_10", "MRR@10")),
                        lambda key: {"pretrained": evaluated["baseline"].get(f"pretrained_{key}")},
                        evaluated.get("baseline_split", "test"))
