import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.embedding_table import TEXT_KEYS, sentence_rows, write_embedding_table

LINEAGE = {"model_name": "m", "model_version": "3", "dataset_version": "abc"}


def _batches(n: int, size: int):
    for start in range(0, n, size):
        ids = [f"r{i:04d}" for i in range(start, min(n, start + size))]
        yield pa.record_batch({
            "id": pa.array(ids),
            "split": pa.array(["train"] * len(ids)),
            "label": pa.array([i % 3 for i in range(len(ids))], pa.int64()),
            "image": pa.array([i.encode() for i in ids], pa.binary()),
        })


def _embed(images):
    return np.array([[len(b), float(b[-1])] for b in images], dtype=np.float32)


def test_writes_every_row_with_lineage_and_fixed_size_embeddings(tmp_path):
    target = tmp_path / "table"
    seen = []
    rows = write_embedding_table(_batches(25, 10), _embed, 2, target, LINEAGE, progress=seen.append)
    table = pq.read_table(target)
    assert rows == table.num_rows == 25 and seen == [10, 20, 25]
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 2)
    assert table.column("id").to_pylist() == [f"r{i:04d}" for i in range(25)]
    assert set(table.column("model_version").to_pylist()) == {"3"}
    assert table.column("embedding")[3].as_py() == [5.0, float(ord("3"))]


def test_failure_midway_keeps_the_previous_table_and_leaves_no_staging(tmp_path):
    target = tmp_path / "table"
    write_embedding_table(_batches(5, 5), _embed, 2, target, LINEAGE)

    def broken(images):
        if images[0] == b"r0010":
            raise RuntimeError("model crashed")
        return _embed(images)

    with pytest.raises(RuntimeError, match="model crashed"):
        write_embedding_table(_batches(30, 10), broken, 2, target, LINEAGE)
    assert pq.read_table(target).num_rows == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table"]


def test_wrong_embedding_shape_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"expected \(5, 3\)"):
        write_embedding_table(_batches(5, 5), _embed, 3, tmp_path / "t", LINEAGE)


def test_rewrite_replaces_the_table_atomically(tmp_path):
    target = tmp_path / "table"
    write_embedding_table(_batches(5, 5), _embed, 2, target, LINEAGE)
    write_embedding_table(_batches(7, 5), _embed, 2, target, LINEAGE)
    assert pq.read_table(target).num_rows == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table"]


def test_splits_into_part_files_and_handles_no_rows(tmp_path):
    target = tmp_path / "table"
    assert write_embedding_table(_batches(25, 10), _embed, 2, target, LINEAGE, rows_per_file=20) == 25
    assert sorted(p.name for p in target.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert pq.read_table(target).column("id").to_pylist() == [f"r{i:04d}" for i in range(25)]
    empty = tmp_path / "empty"
    assert write_embedding_table(iter(()), _embed, 2, empty, LINEAGE) == 0
    assert pq.read_table(empty).num_rows == 0


def test_text_pairs_export_one_row_per_sentence_with_its_text(tmp_path):
    pairs = pa.record_batch({
        "id": pa.array(["p1", "p2", "p3"]),
        "split": pa.array(["train", "val", "val"]),
        "text1": pa.array(["a man", "a dog", "alone"]),
        "text2": pa.array(["a person", "a puppy", None]),
    })
    target = tmp_path / "text"
    rows = write_embedding_table(
        sentence_rows([pairs]), lambda texts: np.array([[len(t), 1.0] for t in texts], dtype=np.float32),
        2, target, LINEAGE, input_column="text", keys=TEXT_KEYS,
    )
    table = pq.read_table(target).sort_by("id")
    assert rows == 5
    assert table.column("id").to_pylist() == ["p1/1", "p1/2", "p2/1", "p2/2", "p3/1"]
    assert table.column("text").to_pylist() == ["a man", "a person", "a dog", "a puppy", "alone"]
    assert table.column("split").to_pylist() == ["train", "train", "val", "val", "val"]
    assert [e[0] for e in table.column("embedding").to_pylist()] == [5, 8, 5, 7, 5]
