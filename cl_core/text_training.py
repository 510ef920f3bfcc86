"""Contrastive fine-tuning of a sentence encoder: which rows train, and one optimisation step.

A text objective trains in one of three ways, its "text" form in cl_core.losses.objectives:
    pairs         (text1, text2[, hard negatives]) pairs, in-batch negatives (mnrl, Henderson
                  et al. 2017); pairs scoring below `positive_min_score` are not positives and
                  are left out
    sentences     single sentences, each embedded twice under dropout (simcse, unsupervised
                  SimCSE, Gao et al. 2021); pairs contribute both of their sentences
    scored_pairs  rank the cosines of all pairs like their gold scores (cosent, Su 2022)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn

from cl_core.grad_cache import chunked_backward
from cl_core.losses.objectives import OBJECTIVES, objective_names
from cl_core.modalities.text import TEXT
from cl_core.training_step import apply_step, optimizer_step


@dataclass(frozen=True)
class TextExamples:
    """The training examples of one objective, column-wise; `text2`, `scores` and `negatives`
    are None where the objective does not use them."""

    text1: list[str]
    text2: list[str] | None = None
    scores: np.ndarray | None = None  # (N,) float
    negatives: list[list[str]] | None = None  # N lists of exactly H hard negatives

    def __len__(self) -> int:
        return len(self.text1)

    def take(self, rows: np.ndarray | torch.Tensor) -> TextExamples:
        index = np.asarray(rows, dtype=np.int64)
        return TextExamples(
            [self.text1[i] for i in index],
            None if self.text2 is None else [self.text2[i] for i in index],
            None if self.scores is None else self.scores[index],
            None if self.negatives is None else [self.negatives[i] for i in index],
        )


def text_form(objective: str) -> str:
    """How `objective` trains text (cl_core.losses.objectives): "pairs", "scored_pairs" or
    "sentences"."""
    form = OBJECTIVES[objective].trains.get(TEXT.name) if objective in OBJECTIVES else None
    if form is None:
        raise ValueError(f"unknown text objective {objective!r}; use one of {objective_names(TEXT.name)}")
    return form


def select_examples(
    table: pa.Table, objective: str, positive_min_score: float | None = None, hard_negatives: int = 0
) -> TextExamples:
    """The rows of a text dataset (columns text1, text2, score, negatives) that train
    `objective`, as examples. Raises ValueError naming what is missing when the data cannot
    train it at all (e.g. cosent without scores)."""
    form = text_form(objective)
    if form == "sentences":
        sentences = pc.unique(pa.concat_arrays([
            table.column("text1").combine_chunks(), pc.drop_null(table.column("text2")).combine_chunks(),
        ])).to_pylist()
        return TextExamples(sorted(sentences))  # sorted: the same examples whatever the row order

    pairs = table.filter(pc.is_valid(table.column("text2")))
    if pairs.num_rows == 0:
        raise ValueError(f"{objective} trains on sentence pairs, but no row has a second sentence (text2)")
    scored = pc.is_valid(pairs.column("score"))
    if form == "scored_pairs" or positive_min_score is not None:
        if not pc.any(scored).as_py():
            raise ValueError(f"{objective} needs pair scores (the score column), but no pair has one")
        pairs = pairs.filter(scored)
    if form == "scored_pairs":
        return TextExamples(
            pairs.column("text1").to_pylist(), pairs.column("text2").to_pylist(),
            pairs.column("score").to_numpy().astype(np.float64),
        )
    if positive_min_score is not None:
        pairs = pairs.filter(pc.greater_equal(pairs.column("score"), positive_min_score))
    negatives = None
    if hard_negatives:
        counts = pc.fill_null(pc.list_value_length(pairs.column("negatives")), 0)
        pairs = pairs.filter(pc.greater_equal(counts, hard_negatives))
        negatives = [list(values[:hard_negatives]) for values in pairs.column("negatives").to_pylist()]
    return TextExamples(pairs.column("text1").to_pylist(), pairs.column("text2").to_pylist(), negatives=negatives)


def text_ids(texts: list[str]) -> torch.Tensor:
    """(N,) int64 fingerprints of the texts: equal texts in a batch are never each other's
    negatives (STS-B, for one, repeats sentences across pairs)."""
    return torch.tensor(
        [int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "big", signed=True) for t in texts],
        dtype=torch.int64,
    )


Tokenize = Callable[[list[str]], dict[str, torch.Tensor]]


def _texts(batch: TextExamples, form: str) -> list[str]:
    """Every text of the step in the order the loss reads them: first, second, hard negatives."""
    if form == "sentences":
        return batch.text1 + batch.text1
    return batch.text1 + batch.text2 + [n for row in (batch.negatives or []) for n in row]


def _loss_of(batch: TextExamples, form: str, loss_fn: nn.Module,
             device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The objective's loss as a function of the step's (N, D) float32 embeddings, `_texts` order."""
    size = len(batch)

    def loss_of(embeddings: torch.Tensor) -> torch.Tensor:
        first, second = embeddings[:size], embeddings[size : 2 * size]  # (B, D) each
        if form == "sentences":
            return loss_fn(first, second, ids=text_ids(batch.text1).to(device))
        if form == "scored_pairs":
            return loss_fn(first, second, torch.as_tensor(batch.scores, dtype=torch.float32, device=device))
        negatives = None
        if batch.negatives is not None:
            negatives = embeddings[2 * size :].reshape(size, -1, embeddings.shape[1])  # (B, H, D)
        return loss_fn(first, second, negatives, ids=text_ids(batch.text2).to(device))

    return loss_of


def text_loss(model: nn.Module, tokenize: Tokenize, batch: TextExamples, objective: str, loss_fn: nn.Module,
              device: torch.device, autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The objective's loss on `batch`. Every text of the step goes through ONE forward pass (a
    DDP-wrapped model then sees one forward per backward); for simcse the batch is embedded
    twice in that pass, and dropout gives the two copies different noise."""
    form = text_form(objective)
    tokens = {key: value.to(device) for key, value in tokenize(_texts(batch, form)).items()}
    with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        embeddings = model(**tokens)
    return _loss_of(batch, form, loss_fn, device)(embeddings.float())


def text_train_step(model: nn.Module, tokenize: Tokenize, batch: TextExamples, objective: str, loss_fn: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                    device: torch.device | None = None, autocast_dtype: torch.dtype | None = None,
                    chunk_size: int | None = None) -> dict[str, float]:
    """One step of `objective` on `batch`; returns {"loss", "lr"}. The model trains in train
    mode (dropout on: SimCSE needs it, and the pretrained encoders were trained with it). With
    `chunk_size`, the encoder runs on at most that many texts at a time and the loss still reads
    every embedding of the step."""
    model.train()
    device = device or torch.device("cpu")
    if chunk_size is None:
        loss = text_loss(model, tokenize, batch, objective, loss_fn, device, autocast_dtype)
        return optimizer_step(loss, optimizer, scheduler)
    form = text_form(objective)
    texts = _texts(batch, form)
    # Each chunk is tokenised on its own: padded to its own longest text, not the step's (the
    # embeddings do not depend on the padding: pooling reads the attention mask).
    chunks = [{key: value.to(device) for key, value in tokenize(texts[start:start + chunk_size]).items()}
              for start in range(0, len(texts), chunk_size)]
    optimizer.zero_grad(set_to_none=True)
    loss = chunked_backward(model, chunks, _loss_of(batch, form, loss_fn, device), autocast_dtype)
    return apply_step(loss, optimizer, scheduler)
