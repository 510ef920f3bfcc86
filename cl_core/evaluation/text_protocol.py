"""The text evaluation protocol, on a dataset's evaluation split of sentence pairs: STS
Spearman/Pearson of the cosine of each pair against its gold score (the scored pairs), and pair
retrieval (recall@1/5/10, MRR@10 of each query's second sentence among all distinct second
sentences); the primary metric is STS Spearman, MRR@10 when the split has no gold scores.

The model comes in as a callable `embed(texts) -> (N, D)`, so the protocol needs no registry:
the evaluate flow passes a loaded pyfunc's `predict`, and the pretrained encoder's own.

`evaluate` and `gate_score` are the entry points every protocol shares (the record's "protocol"
part, `cl_core.modalities`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow.compute as pc

from cl_core.config import EvalConfig, ViewsConfig
from cl_core.datasets import DatasetVersion
from cl_core.evaluation.primary import primary_metric
from cl_core.evaluation.retrieval import retrieval_scores
from cl_core.evaluation.sts import sts_correlation
from cl_core.modalities.text import TEXT

Embed = Callable[[list[str]], np.ndarray]  # texts -> (N, D)
COUNTS = ("eval_pairs", "retrieval_queries")  # metrics that count rows, not scores: no baseline of them


def evaluation_split(dataset: DatasetVersion, cfg: EvalConfig) -> str:
    """The configured split, else "test" when the dataset has one, else "val" (STS-B: dev)."""
    splits = dataset.splits
    split = cfg.split or ("test" if splits.get("test") else "val")
    if not splits.get(split):
        raise ValueError(f"dataset {dataset.name}@{dataset.version} has no {split!r} rows to evaluate on (splits: {splits})")
    return split


def pair_metrics(embed: Embed, text1: list[str], text2: list[str], scores: np.ndarray,
                 retrieval_min_score: float | None = None) -> dict[str, float]:
    """The protocol on pairs (`scores` float, NaN where a pair has no gold score): "sts_spearman"
    and "sts_pearson" when two or more pairs are scored; "recall_at_*", "mrr_at_10" and
    "retrieval_queries" over the queries (every pair, or only those scored at least
    `retrieval_min_score`); "eval_pairs"."""
    embeddings1, embeddings2 = embed(text1), embed(text2)
    metrics: dict[str, float] = {}
    scored = ~np.isnan(scores)
    if scored.sum() >= 2:
        correlation = sts_correlation(embeddings1[scored], embeddings2[scored], scores[scored])
        metrics["sts_spearman"], metrics["sts_pearson"] = correlation["spearman"], correlation["pearson"]

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
        metrics.update(retrieval_scores(embeddings1[queries], corpus, targets))
        metrics["retrieval_queries"] = float(len(queries))
    metrics["eval_pairs"] = float(len(text1))
    return metrics


def text_metrics(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig) -> dict[str, float]:
    """`pair_metrics` of the evaluation split's pairs that have a second sentence."""
    split = evaluation_split(dataset, cfg)
    pairs = dataset.read(split=split, columns=["text1", "text2", "score"])
    pairs = pairs.filter(pc.is_valid(pairs.column("text2")))
    if pairs.num_rows == 0:
        raise ValueError(f"dataset {dataset.name}@{dataset.version}: the {split!r} split has no sentence pairs to evaluate")
    scores = pairs.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
    return pair_metrics(embed, pairs.column("text1").to_pylist(), pairs.column("text2").to_pylist(), scores,
                        cfg.retrieval_min_score)


def pretrained_baseline(metrics: dict[str, float]) -> dict[str, float]:
    """The pretrained encoder's metrics as the baseline: "pretrained_<metric>", counts left out."""
    return {f"pretrained_{key}": value for key, value in metrics.items() if key not in COUNTS}


def evaluate_text(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig,
                  pretrained: Embed | None = None) -> dict[str, Any]:
    """{"split", "metrics", "baseline", "primary_metric"} of `embed`, next to the encoder it was
    fine-tuned from (`pretrained`; none: an empty baseline)."""
    metrics = text_metrics(embed, dataset, cfg)
    baseline = pretrained_baseline(text_metrics(pretrained, dataset, cfg)) if pretrained is not None else {}
    return {
        "split": evaluation_split(dataset, cfg),
        "metrics": metrics,
        "baseline": baseline,
        "primary_metric": primary_metric(TEXT.name, metrics),
    }


def primary_score(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig) -> tuple[str, float]:
    """(metric name, value) of the promotion gate for `embed` on `dataset`."""
    metrics = text_metrics(embed, dataset, cfg)
    name = primary_metric(TEXT.name, metrics)
    return name, metrics[name]


def evaluate(embed: Embed, dataset: DatasetVersion, cfg: EvalConfig, views_cfg: ViewsConfig | None = None,
             report: Callable[[int, int, str], None] | None = None, *, pretrained: Embed | None = None) -> dict[str, Any]:
    """`evaluate_text`; no views are made and no steps reported."""
    return evaluate_text(embed, dataset, cfg, pretrained)


gate_score = primary_score


def summary_lines(metrics: dict[str, float], baseline: dict[str, float], split: str) -> list[str]:
    """What `clpipe run` prints of an evaluation: each metric the split gave, next to the
    pretrained encoder's."""
    lines = []
    for key, label in (("sts_spearman", "STS Spearman"), ("sts_pearson", "STS Pearson"), ("recall_at_1", "recall@1"),
                       ("recall_at_10", "recall@10"), ("mrr_at_10", "MRR@10")):
        if key in metrics:
            before = baseline.get(f"pretrained_{key}")
            pretrained = f"   pretrained {before:.4f}" if before is not None else ""
            lines.append(f"  {label:<14} {metrics[key]:.4f}{pretrained}   ({split} split)")
    return lines
