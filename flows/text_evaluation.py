"""Scoring a registered text model: STS correlation against gold scores and pair retrieval on
the evaluation split, next to the pretrained encoder it was fine-tuned from."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from cl_core.config import EvalConfig
from cl_core.datasets import DatasetVersion
from cl_core.evaluation import retrieval_scores, sts_correlation
from flows import registry


def evaluation_split(dataset: DatasetVersion, cfg: EvalConfig) -> str:
    """The configured split, else "test" when the dataset has one, else "val" (STS-B: dev)."""
    splits = dataset.splits
    split = cfg.split or ("test" if splits.get("test") else "val")
    if not splits.get(split):
        raise ValueError(f"dataset {dataset.name}@{dataset.version} has no {split!r} rows to evaluate on (splits: {splits})")
    return split


def text_metrics(embed, dataset: DatasetVersion, cfg: EvalConfig) -> dict[str, float]:
    """STS Spearman/Pearson of cosine vs gold scores (scored pairs), and recall@1/5/10 and
    MRR@10 of each query pair's second sentence among all distinct second sentences.
    `embed(texts) -> (N, D)`."""
    split = evaluation_split(dataset, cfg)
    pairs = dataset.read(split=split, columns=["text1", "text2", "score"])
    pairs = pairs.filter(pc.is_valid(pairs.column("text2")))
    if pairs.num_rows == 0:
        raise ValueError(f"dataset {dataset.name}@{dataset.version}: the {split!r} split has no sentence pairs to evaluate")
    text1, text2 = pairs.column("text1").to_pylist(), pairs.column("text2").to_pylist()
    embeddings1, embeddings2 = embed(text1), embed(text2)
    metrics: dict[str, float] = {}
    scores = pairs.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
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
    if cfg.retrieval_min_score is not None:
        queries = queries[scored & (np.nan_to_num(scores, nan=-np.inf) >= cfg.retrieval_min_score)]
    if len(queries):
        targets = np.array([position[text2[i]] for i in queries])
        metrics.update(retrieval_scores(embeddings1[queries], corpus, targets))
        metrics["retrieval_queries"] = float(len(queries))
    metrics["eval_pairs"] = float(pairs.num_rows)
    return metrics


def _embedder(model: Any):
    """texts -> (N, D) float32 through a loaded pyfunc, exactly as a registry user calls it."""
    return lambda texts: np.asarray(model.predict(pd.DataFrame({"text": texts})), dtype=np.float32)


def primary_metric(metrics: dict[str, float]) -> str:
    """The promotion gate's metric: STS Spearman when the split has gold scores, else MRR@10."""
    return "sts_spearman" if "sts_spearman" in metrics else "mrr_at_10"


def score_text(model_ref: str, dataset: DatasetVersion, cfg: EvalConfig) -> dict[str, Any]:
    """Metrics of a registered text model and of the pretrained encoder it started from."""
    from cl_core.models.text import TextEmbedder, TextTokenizer, embed_texts, resolve_text_encoder

    model, version = registry.load_model(registry.ModelRef.parse(model_ref))
    wrapped = model.unwrap_python_model()
    metrics = text_metrics(_embedder(model), dataset, cfg)
    baseline: dict[str, float] = {}
    if wrapped.base_encoder:
        base_path = resolve_text_encoder(wrapped.base_encoder)
        base = TextEmbedder.from_pretrained(base_path).eval()
        tokenizer = TextTokenizer(base_path, max_length=wrapped.max_length)
        base_metrics = text_metrics(lambda texts: embed_texts(base, tokenizer, texts), dataset, cfg)
        baseline = {
            f"pretrained_{key}": value for key, value in base_metrics.items() if key not in ("eval_pairs", "retrieval_queries")
        }
    return {
        "model_name": version.name,
        "model_version": str(version.version),
        "source_run_id": version.run_id,
        "dataset": {"name": dataset.name, "version": dataset.version},
        "split": evaluation_split(dataset, cfg),
        "metrics": metrics,
        "baseline": baseline,
        "primary_metric": primary_metric(metrics),
    }


def primary_score(model_ref: str, dataset: DatasetVersion, cfg: EvalConfig) -> tuple[str, float]:
    """(metric name, value) of the promotion gate for a registered text model."""
    model, _ = registry.load_model(registry.ModelRef.parse(model_ref))
    metrics = text_metrics(_embedder(model), dataset, cfg)
    name = primary_metric(metrics)
    return name, metrics[name]
