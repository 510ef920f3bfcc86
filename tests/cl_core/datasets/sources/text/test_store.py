"""store.py for text: ingest_text / ingest_text_records, quarantine, versioning, reading back."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from cl_core.datasets import (
    TEXT_SCHEMA,
    BadRecord,
    DatasetStore,
    IngestError,
    TextPairRecord,
    TextSourceSpec,
    split_for_id,
)
from cl_core.datasets.manifest import MANIFEST_FILE
from cl_core.datasets.version_id import bucket_order

STS = TextSourceSpec(text_columns=(5, 6), score_column=4)


def _snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _without_quarantine(snapshot):
    return {k: v for k, v in snapshot.items() if "quarantine" not in k}


def _sts_lines(count, start=0, prefix="s"):
    return [
        f"g\tf\t2012\t{i:04d}\t{i % 6}\t{prefix} first {i}\t{prefix} second {i}"
        for i in range(start, start + count)
    ]


def _write_sts(folder, name, lines):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _quarantine(result):
    return [json.loads(line) for line in result.quarantine_path.read_text().splitlines()]


# ---- ingest_text ---------------------------------------------------------------------------


def test_tsv_ingest_quarantines_malformed_rows_with_line_and_reason(tmp_path):
    lines = _sts_lines(40)
    lines[4] = "g\tf\t2012\t0004\t4.0\tmissing text2"
    lines[9] = "g\tf\t2012\t0009\tfive\ta\tb"
    lines[19] = "g\tf\t2012\t0019\t1.0\t \tb"
    folder = _write_sts(tmp_path / "src", "sts-train.csv", lines)
    store = DatasetStore(tmp_path / "store")
    result = store.ingest_text(folder, "sts", STS, max_bad_fraction=0.1)
    # A train file alone names no val: 10 % of its rows, chosen by id, are carved into val.
    assert (result.rows, result.quarantined, result.splits) == (37, 3, {"train": 32, "val": 5})
    assert result.channels is None and result.created
    source = str((folder / "sts-train.csv").resolve())
    assert _quarantine(result) == [
        {"id": "sts-train:000005", "source": source,
         "reason": "sts-train.csv line 5: column 7 (text2) is missing (the line has 6 columns)"},
        {"id": "sts-train:000010", "source": source,
         "reason": "sts-train.csv line 10: column 5 (score) is not a number: 'five'"},
        {"id": "sts-train:000020", "source": source,
         "reason": "sts-train.csv line 20: column 6 (text1) is empty"},
    ]
    assert result.quarantine_path.name.endswith(f"-{result.version}.jsonl")
    table = store.resolve("sts").read()
    assert table.schema.equals(TEXT_SCHEMA)
    first = table.filter(pc.field("id") == "sts-train:000001").to_pylist()[0]
    assert first == {
        "id": "sts-train:000001", "text1": "s first 0", "text2": "s second 0", "score": 0.0,
        "label": None, "negatives": None, "split": "train",
    }
    assert store.resolve("sts").manifest["quarantined"] == 3


def test_too_many_bad_rows_leave_the_previous_version_and_latest_untouched(tmp_path):
    folder = _write_sts(tmp_path / "src", "sts-train.csv", _sts_lines(20))
    store = DatasetStore(tmp_path / "store")
    previous = store.ingest_text(folder, "sts", STS)
    before = _snapshot(tmp_path / "store")
    _write_sts(folder, "sts-dev.csv", _sts_lines(18) + ["only\tthree\tcolumns"] * 2)
    with pytest.raises(IngestError, match=r"2 of 40 records .* are bad \(5.0% > max_bad_frac"):
        store.ingest_text(folder, "sts", STS, max_bad_fraction=0.04)
    assert _without_quarantine(_snapshot(tmp_path / "store")) == before
    assert store.latest("sts") == previous.version and store.versions("sts") == [previous.version]
    (failed,) = (tmp_path / "store" / "sts" / "quarantine").iterdir()
    assert failed.name.endswith("-failed.jsonl")
    reasons = [json.loads(line)["reason"] for line in failed.read_text().splitlines()]
    assert reasons == [
        "sts-dev.csv line 19: column 6 (text1) is missing (the line has 3 columns)",
        "sts-dev.csv line 20: column 6 (text1) is missing (the line has 3 columns)",
    ]
    assert not list((tmp_path / "store").rglob(".tmp-*"))
    # At the default 5% the same source ingests, with both splits.
    result = store.ingest_text(folder, "sts", STS)
    assert result.splits == {"train": 20, "val": 18} and result.quarantined == 2


def test_same_content_is_the_same_version_and_writes_nothing(tmp_path):
    lines = _sts_lines(30)
    first_folder = _write_sts(tmp_path / "a", "sts-train.csv", lines)
    store = DatasetStore(tmp_path / "store")
    first = store.ingest_text(first_folder, "sts", STS)
    before = _snapshot(tmp_path / "store")
    # Another folder, CRLF line ends, a trailing blank line, and extra columns: same rows.
    other = tmp_path / "b"
    other.mkdir()
    (other / "sts-train.csv").write_bytes(
        ("\r\n".join(line + "\tsource tag" for line in lines) + "\r\n\r\n").encode()
    )
    again = store.ingest_text(other, "sts", STS)
    assert (again.version, again.created, again.rows) == (first.version, False, 30)
    assert _snapshot(tmp_path / "store") == before  # not even LATEST was rewritten differently
    changed = lines[:]
    changed[3] = changed[3].replace("\t3\t", "\t3.5\t")
    _write_sts(other, "sts-train.csv", changed)
    new = store.ingest_text(other, "sts", STS)
    assert new.version != first.version and new.created
    assert store.versions("sts") == [first.version, new.version]
    assert store.latest("sts") == new.version


def test_unlabeled_sentence_list_ingests_without_text2(tmp_path):
    source = tmp_path / "wiki1m.txt"
    source.write_text("".join(f"Sentence number {i}.\n" for i in range(50)), encoding="utf-8")
    store = DatasetStore(tmp_path / "store")
    result = store.ingest_text(source, "wiki", TextSourceSpec(format="tsv", text_columns=(0,)))
    version = store.resolve("wiki")
    table = version.read()
    assert result.rows == 50 and set(table.column("text2").to_pylist()) == {None}
    assert table.column("split").to_pylist() == [split_for_id(i) for i in table["id"].to_pylist()]
    manifest = version.manifest
    assert (manifest["pairs"], manifest["scored_rows"], manifest["unlabeled_rows"]) == (0, 0, 50)
    assert (manifest["score_min"], manifest["score_max"]) == (None, None)
    assert manifest["num_classes"] == 0


def test_jsonl_hard_negatives_and_labels_are_stored(tmp_path):
    rows = [
        {"a": f"anchor {i}", "p": f"positive {i}", "n": [f"neg {i}a", f"neg {i}b"][: i % 3],
         "y": i % 3}
        for i in range(12)
    ]
    (tmp_path / "nli-train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    spec = TextSourceSpec(text_columns=("a", "p"), negative_columns=("n",), label_column="y")
    store = DatasetStore(tmp_path / "store")
    store.ingest_text(tmp_path / "nli-train.jsonl", "nli", spec)
    version = store.resolve("nli")
    table = version.read(columns=["id", "negatives", "label"]).sort_by("id")
    assert table.column("negatives").to_pylist() == [r["n"] or None for r in rows]
    assert table.column("label").to_pylist() == [r["y"] for r in rows]
    manifest = version.manifest
    assert manifest["rows_with_negatives"] == 8
    assert (manifest["labels"], manifest["num_classes"], manifest["unlabeled_rows"]) == (
        [0, 1, 2], 3, 0
    )


def test_parquet_source_and_limit(tmp_path):
    table = pa.table({"x": [f"x{i}" for i in range(100)], "y": [f"y{i}" for i in range(100)]})
    pq.write_table(table, tmp_path / "pairs-val.parquet")
    store = DatasetStore(tmp_path / "store")
    result = store.ingest_text(tmp_path / "pairs-val.parquet", "p", TextSourceSpec(), limit=25)
    assert result.splits == {"val": 25}
    ids = sorted(store.resolve("p").read(columns=["id"]).column("id").to_pylist())
    assert ids == [f"pairs-val:{i:06d}" for i in range(1, 26)]


def test_gzipped_stsbenchmark_tsv_ingests_like_the_plain_file(tmp_path):
    header = "split\tgenre\tdataset\tyear\tsid\tscore\tsentence1\tsentence2"
    lines = [header] + [
        f"{('train', 'dev', 'test')[i % 3]}\tg\td\t2012\t{i}\t{i % 6}\tfirst {i}\tsecond {i}"
        for i in range(30)
    ]
    text = "\n".join(lines) + "\n"
    (tmp_path / "gz").mkdir()
    (tmp_path / "gz" / "stsbenchmark.tsv.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "stsbenchmark.tsv").write_text(text, encoding="utf-8")
    spec = TextSourceSpec(
        text_columns=("sentence1", "sentence2"), score_column="score", split_column="split",
        header=True,
    )
    store = DatasetStore(tmp_path / "store")
    result = store.ingest_text(tmp_path / "gz", "stsb", spec)
    assert (result.rows, result.quarantined) == (30, 0)
    assert result.splits == {"train": 10, "val": 10, "test": 10}
    rows = store.resolve("stsb").read().sort_by("id").to_pylist()
    assert rows[0] == {
        "id": "stsbenchmark:000002", "text1": "first 0", "text2": "second 0", "score": 0.0,
        "label": None, "negatives": None, "split": "train",
    }
    assert store.resolve("stsb").manifest["source"] == str((tmp_path / "gz").resolve())
    # Same rows, same ids: the compressed file is the same version as the plain one.
    plain = store.ingest_text(tmp_path / "plain", "stsb", spec)
    assert (plain.version, plain.created) == (result.version, False)


def test_text_columns_are_zstd_compressed(tmp_path):
    (tmp_path / "t.tsv").write_text("".join(f"sentence {i}\tother {i}\n" for i in range(30)))
    store = DatasetStore(tmp_path / "store")
    store.ingest_text(tmp_path / "t.tsv", "t", TextSourceSpec())
    metadata = pq.ParquetFile(store.resolve("t").files[0]).metadata.row_group(0)
    codecs = {metadata.column(i).path_in_schema: metadata.column(i).compression
              for i in range(metadata.num_columns)}
    assert set(codecs.values()) == {"ZSTD"} and "negatives.list.element" in codecs


# ---- ingest_text_records -------------------------------------------------------------------


def _records(count, start=0, **fields):
    return [
        TextPairRecord(f"r{i:04d}", f"first {i}", f"second {i}", **fields)
        for i in range(start, start + count)
    ]


def test_records_are_validated_and_quarantined(tmp_path):
    records = _records(50, score=2.5) + [
        BadRecord("lost", "my-reader", "could not fetch"),
        TextPairRecord("r0003", "duplicate id", "x"),
        TextPairRecord("blank1", "   ", "x"),
        TextPairRecord("empty2", "x", ""),
        TextPairRecord("holdout", "x", "y", split="holdout"),
        TextPairRecord("neglabel", "x", "y", label=-1),
        TextPairRecord("nan", "x", "y", score=float("nan")),
        TextPairRecord("inf", "x", "y", score=float("inf")),
        TextPairRecord("emptyneg", "x", "y", negatives=("fine", "")),
    ]
    result = DatasetStore(tmp_path).ingest_text_records(
        records, "gen", description="generated:pairs", max_bad_fraction=0.2
    )
    assert (result.rows, result.quarantined) == (50, 9)
    reasons = {bad["id"]: bad["reason"] for bad in _quarantine(result)}
    assert reasons == {
        "lost": "could not fetch",
        "r0003": "duplicate id",
        "blank1": "text1 is empty",
        "empty2": "text2 is empty (use None for a single-sentence row)",
        "holdout": "unknown split 'holdout'",
        "neglabel": "negative label -1",
        "nan": "score is not a finite number: nan",
        "inf": "score is not a finite number: inf",
        "emptyneg": "hard negative 2 is empty",
    }
    assert _quarantine(result)[1]["source"] == "generated:pairs"


def test_records_version_ignores_order_and_int_vs_float_scores(tmp_path):
    store = DatasetStore(tmp_path)
    records = _records(20, score=4.0, label=1) + [TextPairRecord("single", "only one")]
    first = store.ingest_text_records(records, "gen", description="a")
    whole = [TextPairRecord(r.id, r.text1, r.text2, 4 if r.score else None, r.label)
             for r in records]
    again = store.ingest_text_records(reversed(whole), "gen", description="b")
    assert (again.version, again.created) == (first.version, False)
    table = store.resolve("gen").read()
    ids = [r.id for r in records]
    assert table.column("id").to_pylist() == [ids[i] for i in bucket_order(ids)[0]]
    for field_change in ({"text2": "changed"}, {"negatives": ("n",)}, {"split": "test"},
                         {"label": 2}, {"score": 4.5}):
        changed = [records[0].__class__(**{**records[0].__dict__, **field_change}), *records[1:]]
        result = DatasetStore(tmp_path / "other").ingest_text_records(
            changed, "gen", description="c"
        )
        assert result.version != first.version, field_change


def test_records_wrong_types_raise_and_publish_nothing(tmp_path):
    store = DatasetStore(tmp_path)
    with pytest.raises(TypeError, match=r"records\[1\] is a dict, not a TextPairRecord"):
        store.ingest_text_records([*_records(1), {"id": "x"}], "gen", description="g")
    with pytest.raises(TypeError, match=r"records\[0\] has wrong field types.*score str"):
        store.ingest_text_records([TextPairRecord("x", "a", "b", score="4")], "gen",
                                  description="g")
    with pytest.raises(TypeError, match=r"negatives str"):
        store.ingest_text_records([TextPairRecord("x", "a", negatives="n")], "gen",
                                  description="g")
    with pytest.raises(ValueError, match="description"):
        store.ingest_text_records(_records(1), "gen", description=" ")
    with pytest.raises(TypeError, match="spec must be a TextSourceSpec"):
        store.ingest_text(tmp_path, "gen", {"format": "tsv"})
    with pytest.raises(IngestError, match="empty: 0 good records"):
        store.ingest_text_records([], "gen", description="g")
    assert store.names() == []


def test_text_and_image_versions_do_not_share_a_name(tmp_path):
    store = DatasetStore(tmp_path)
    store.ingest("digits", "digits", limit=10)
    with pytest.raises(IngestError, match="'digits' .* holds image versions; ingest text under"):
        store.ingest_text_records(_records(3), "digits", description="g")
    store.ingest_text_records(_records(3), "pairs", description="g")
    with pytest.raises(IngestError, match="holds text versions; ingest images under another name"):
        store.ingest("digits", "pairs", limit=10)


# ---- reading a text version ----------------------------------------------------------------


def test_text_version_reads_and_streams_by_text_schema(tmp_path):
    store = DatasetStore(tmp_path, rows_per_file=40, row_group_rows=16)
    store.ingest_text_records(_records(100, score=1.0), "gen", description="g")
    version = store.resolve("gen")
    assert version.kind == "text" and version.class_names is None and version.num_classes == 0
    with pytest.raises(TypeError, match="text dataset: it has no image channels"):
        _ = version.channels
    assert version.manifest["files"] == [f"part-{i:05d}.parquet" for i in range(3)]
    whole = version.read()
    assert pa.Table.from_batches(list(version.iter_batches(batch_size=7))).equals(whole)
    val = version.read(split="val", columns=["text1", "score"])
    assert val.column_names == ["text1", "score"] and val.num_rows == version.num_rows("val")
    streamed = pa.Table.from_batches(list(version.iter_batches(8, ["text1", "score"], "val")))
    assert streamed.equals(val)
    with pytest.raises(ValueError, match=r"unknown columns \['image'\]; the columns are \['id', "
                                         r"'text1', 'text2'"):
        version.read(columns=["image"])


def test_manifests_carry_a_kind_and_old_image_manifests_read_as_image(tmp_path):
    store = DatasetStore(tmp_path)
    result = store.ingest("digits", "digits", limit=20)
    version = store.resolve("digits")
    assert version.manifest["kind"] == "image" and version.kind == "image"
    manifest_path = result.path / MANIFEST_FILE
    old = json.loads(manifest_path.read_text())
    del old["kind"]  # as written before text datasets existed
    manifest_path.write_text(json.dumps(old))
    old_version = store.resolve("digits")
    assert old_version.kind == "image" and old_version.channels == 1
    assert old_version.read(columns=["id", "label"]).num_rows == 20
    # And an image ingest under that name still passes the same-kind check.
    assert store.ingest("digits", "digits", limit=20).created is False
