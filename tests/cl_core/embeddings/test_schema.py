import hashlib

import pyarrow as pa

from cl_core.embeddings import TEXT_KEYS, sentence_rows


def test_text_pairs_give_one_row_per_sentence_with_its_text_and_hash():
    pairs = pa.record_batch({
        "id": pa.array(["p1", "p2", "p3"]),
        "split": pa.array(["train", "val", "val"]),
        "text1": pa.array(["a man", "a dog", "alone"]),
        "text2": pa.array(["a person", "a puppy", None]),
    })
    table = pa.Table.from_batches(list(sentence_rows([pairs])), schema=TEXT_KEYS).sort_by("id")
    assert table.column("id").to_pylist() == ["p1/1", "p1/2", "p2/1", "p2/2", "p3/1"]
    assert table.column("text").to_pylist() == ["a man", "a person", "a dog", "a puppy", "alone"]
    assert table.column("split").to_pylist() == ["train", "train", "val", "val", "val"]
    expected = [hashlib.sha256(t.encode()).hexdigest() for t in table.column("text").to_pylist()]
    assert table.column("content_sha256").to_pylist() == expected
