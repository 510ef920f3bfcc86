"""open_text_source (+ plan.py, readers.py, fields.py): files and folders."""

from __future__ import annotations

import gzip
import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cl_core.datasets import BadRecord, IngestError, TextPairRecord, TextSourceSpec
from cl_core.datasets.sources.text import open_text_source, split_from_file_name

STS = TextSourceSpec(text_columns=(5, 6), score_column=4)
STS_JSONL = TextSourceSpec(format="jsonl", text_columns=("x",))


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def _write_gz(path, text):
    return _write(path, gzip.compress(text.encode("utf-8") if isinstance(text, str) else text))


def _read(source, spec, limit=None):
    """The records with the splits the file names give (no val carved from train: test_carved_val.py)."""
    return list(open_text_source(source, spec, limit=limit, val_fraction=0).records)


def _good(records):
    return [r for r in records if isinstance(r, TextPairRecord)]


def _reasons(records):
    return [r.reason for r in records if isinstance(r, BadRecord)]


def _sts_line(score, text1, text2, *extra):
    return "\t".join(["main-captions", "MSRvid", "2012test", "0001", score, text1, text2, *extra])


def test_dev_lands_in_val_from_the_file_name_and_from_a_split_column(tmp_path):
    _write(tmp_path / "sts-dev.tsv", "a\tb\n")
    _write(tmp_path / "pairs.jsonl", '{"s1": "c", "s2": "d", "part": "Dev"}\n')
    assert [r.split for r in _read(tmp_path / "sts-dev.tsv", TextSourceSpec())] == ["val"]
    spec = TextSourceSpec(text_columns=("s1", "s2"), split_column="part")
    assert [r.split for r in _read(tmp_path / "pairs.jsonl", spec)] == ["val"]


# ---- TSV -----------------------------------------------------------------------------------


def test_tsv_by_position_keeps_quotes_and_ignores_extra_columns(tmp_path):
    lines = [
        _sts_line("5.000", "A plane is taking off.", "An air plane is taking off."),
        _sts_line("0.8", '"Then the captain was gone.', "Then the captain came back."),
        _sts_line("4", 'A "quoted" word, and a comma.', "Plain.", "tag a", "tag b"),
    ]
    path = _write(tmp_path / "sts-train.csv", "\n".join(lines) + "\n")
    records = _read(path, STS)
    assert records == [
        TextPairRecord("sts-train:000001", "A plane is taking off.", "An air plane is taking off.",
                       score=5.0, split="train"),
        TextPairRecord("sts-train:000002", '"Then the captain was gone.',
                       "Then the captain came back.", score=0.8, split="train"),
        TextPairRecord("sts-train:000003", 'A "quoted" word, and a comma.', "Plain.", score=4.0,
                       split="train"),
    ]


def test_tsv_strips_only_the_line_terminator(tmp_path):
    path = _write(tmp_path / "pairs.tsv", "  spaced first \tsecond\r\nthird\tfourth \n")
    records = _read(path, TextSourceSpec())
    assert [(r.text1, r.text2) for r in records] == [
        ("  spaced first ", "second"),
        ("third", "fourth "),
    ]
    assert [r.split for r in records] == [None, None]  # no split word in "pairs"


def test_tsv_malformed_rows_name_file_line_column_and_problem(tmp_path):
    lines = [
        _sts_line("3.0", "good one", "good two"),
        _sts_line("3.0", "only text1", "   "),
        _sts_line("abc", "bad score", "x"),
        "\t".join(["g", "f", "y", "id", "2.0", "too few"]),
        "",
        _sts_line("", "empty score", "x"),
        _sts_line("1.5", "", "empty text1"),
        _sts_line("2.5", "good three", "good four"),
        "",
        "",
    ]
    path = _write(tmp_path / "sts-dev.tsv", "\n".join(lines))
    records = _read(path, STS)
    assert [(r.id, r.text1, r.score, r.split) for r in _good(records)] == [
        ("sts-dev:000001", "good one", 3.0, "val"),
        ("sts-dev:000008", "good three", 2.5, "val"),
    ]
    assert _reasons(records) == [
        "sts-dev.tsv line 2: column 7 (text2) is empty",
        "sts-dev.tsv line 3: column 5 (score) is not a number: 'abc'",
        "sts-dev.tsv line 4: column 7 (text2) is missing (the line has 6 columns)",
        "sts-dev.tsv line 5: the line is blank",  # data follows it; the two at the end are fine
        "sts-dev.tsv line 6: column 5 (score) is empty",
        "sts-dev.tsv line 7: column 6 (text1) is empty",
    ]
    bad = [r for r in records if isinstance(r, BadRecord)]
    assert bad[0].id_or_location == "sts-dev:000002" and bad[0].source == str(path.resolve())


def test_tsv_header_names_and_positions(tmp_path):
    text = "label\tsentence1\tsentence2\tnote\n1\tA cat.\tA dog.\tx\n0\tSun.\tMoon.\ty\n"
    path = _write(tmp_path / "nli_test.tsv", text)
    spec = TextSourceSpec(text_columns=("sentence1", 2), label_column="label", header=True)
    records = _read(path, spec)
    assert [(r.id, r.text1, r.text2, r.label, r.split) for r in records] == [
        ("nli_test:000002", "A cat.", "A dog.", 1, "test"),
        ("nli_test:000003", "Sun.", "Moon.", 0, "test"),
    ]
    _write(path, text + "x\tlonely\tpair\n")
    assert _reasons(_read(path, spec))[0] == (
        "nli_test.tsv line 4: column 1 'label' (label) is not an integer: 'x'"
    )


def test_tsv_extra_columns_as_hard_negatives(tmp_path):
    path = _write(tmp_path / "triplets.tsv", "anchor\tpositive\tneg one\tneg two\na\tb\tc\n")
    spec = TextSourceSpec(negative_columns=(2, 3))
    records = _read(path, spec)
    assert records[0].negatives == ("neg one", "neg two")
    assert _reasons(records) == ["triplets.tsv line 2: column 4 (negative 2) is missing "
                                 "(the line has 3 columns)"]


def test_single_text_column_gives_sentences_without_text2(tmp_path):
    path = _write(tmp_path / "wiki.txt", "First sentence.\nSecond, with a comma.\n")
    records = _read(path, TextSourceSpec(format="tsv", text_columns=(0,)))
    assert [(r.text1, r.text2) for r in records] == [
        ("First sentence.", None), ("Second, with a comma.", None)
    ]


def test_byte_order_mark_and_invalid_utf8(tmp_path):
    data = "\ufeffhello\tworld\n".encode() + b"caf\xe9\tlatin-1\n" + b"ok\tfine\n"
    records = _read(_write(tmp_path / "enc.tsv", data), TextSourceSpec())
    assert [r.text1 for r in _good(records)] == ["hello", "ok"]
    assert _reasons(records) == [
        "enc.tsv line 2: the line is not valid UTF-8 (invalid continuation byte at byte 3)"
    ]


# ---- CSV -----------------------------------------------------------------------------------


def test_csv_quoting_header_and_multiline_rows(tmp_path):
    text = (
        "id,sentence1,sentence2,score\n"
        'a1,"Hello, world.","He said ""hi"".",4.5\n'
        'a2,"A sentence\nover two lines.",Short.,1\n'
        "a3,Plain,Also plain,0\n"
    )
    path = _write(tmp_path / "train.csv", text)
    spec = TextSourceSpec(
        text_columns=("sentence1", "sentence2"), score_column="score", id_column="id", header=True
    )
    source = open_text_source(path, spec)
    assert source.formats == ["csv"]
    records = list(source.records)
    assert [(r.id, r.text1, r.text2, r.score, r.split) for r in records] == [
        ("a1", "Hello, world.", 'He said "hi".', 4.5, "train"),
        ("a2", "A sentence\nover two lines.", "Short.", 1.0, "train"),
        ("a3", "Plain", "Also plain", 0.0, "train"),
    ]


def test_csv_malformed_rows_report_the_line_they_start_on(tmp_path):
    text = (
        "one,two\n"
        '"multi\nline",fine\n'
        "missing\n"
        "\n"
        'three,"four\n'  # a quote never closed: the rest of the file is this one bad row
        "five,six\n"
    )
    path = _write(tmp_path / "pairs.csv", text)
    records = _read(path, TextSourceSpec())
    assert [(r.id, r.text1) for r in _good(records)] == [
        ("pairs:000001", "one"),
        ("pairs:000002", "multi\nline"),
    ]
    assert _reasons(records) == [
        "pairs.csv line 4: column 2 (text2) is missing (the line has 1 column)",
        "pairs.csv line 5: the line is blank",
        "pairs.csv line 6: not valid CSV (unexpected end of data)",
    ]


def test_csv_extension_is_sniffed_for_tabs(tmp_path):
    tabbed = _write(tmp_path / "a.csv", 'x, "y\tz\n')
    # The rule is the one STS-B needs, "a tab on line 1", so a tab inside line 2 does not count.
    commas = _write(tmp_path / "b.csv", 'x,"y, z"\n"p\tq",r\n')
    assert open_text_source(tabbed, TextSourceSpec()).formats == ["tsv"]
    assert [(r.text1, r.text2) for r in _read(tabbed, TextSourceSpec())] == [('x, "y', "z")]
    assert open_text_source(commas, TextSourceSpec()).formats == ["csv"]
    records = _read(commas, TextSourceSpec())
    assert [(r.text1, r.text2) for r in records] == [("x", "y, z"), ("p\tq", "r")]


# ---- JSONL ---------------------------------------------------------------------------------


def test_jsonl_fields_negatives_and_bad_lines(tmp_path):
    rows = [
        {"q": "query one", "pos": "positive one", "neg": ["hard a", "hard b"], "y": 1},
        {"q": "query two", "pos": "positive two", "neg": "only one", "y": 0},
        {"q": "query three", "neg": [], "y": 0},
        {"q": "query four", "pos": "p", "neg": ["ok", ""], "y": 0},
        {"q": "query five", "pos": None, "neg": [], "y": 0},
        {"q": "query six", "pos": "p", "neg": [], "y": "2.0"},
    ]
    lines = [json.dumps(r) for r in rows[:3]] + ["{not json", "[1, 2]"]
    lines += [json.dumps(r) for r in rows[3:]]
    path = _write(tmp_path / "msmarco-val.jsonl", "\n".join(lines) + "\n\n")
    spec = TextSourceSpec(text_columns=("q", "pos"), negative_columns=("neg",), label_column="y")
    records = _read(path, spec)
    assert [(r.text1, r.text2, r.negatives, r.label, r.split) for r in _good(records)] == [
        ("query one", "positive one", ("hard a", "hard b"), 1, "val"),
        ("query two", "positive two", ("only one",), 0, "val"),
        ("query six", "p", (), 2, "val"),
    ]
    assert _reasons(records) == [
        "msmarco-val.jsonl line 3: field 'pos' (text2) is missing",
        "msmarco-val.jsonl line 4: not valid JSON (Expecting property name enclosed in double "
        "quotes at column 2)",
        "msmarco-val.jsonl line 5: a JSON list, not an object",
        "msmarco-val.jsonl line 6: field 'neg' (negative 1) item 2 is empty",
        "msmarco-val.jsonl line 7: field 'pos' (text2) is null",
    ]


def test_jsonl_id_and_split_columns(tmp_path):
    rows = [
        {"id": 7, "a": "x", "b": "y", "part": "Dev"},
        {"id": "k2", "a": "x", "b": "y", "part": "validation"},
        {"id": "k3", "a": "x", "b": "y", "part": "holdout"},
    ]
    path = _write(tmp_path / "train.jsonl", "\n".join(json.dumps(r) for r in rows))
    spec = TextSourceSpec(text_columns=("a", "b"), id_column="id", split_column="part")
    records = _read(path, spec)
    assert [(r.id, r.split) for r in _good(records)] == [("7", "val"), ("k2", "val")]
    (bad,) = [r for r in records if isinstance(r, BadRecord)]
    assert bad.id_or_location == "k3"  # the file name says train, but the column decides
    assert bad.reason == (
        "train.jsonl line 3: field 'part' (split) is not a split "
        "(train, val, test, or dev, valid, validation): 'holdout'"
    )


# ---- Parquet -------------------------------------------------------------------------------


def test_parquet_by_name_and_position(tmp_path):
    table = pa.table(
        {
            "s1": ["a", "b", None, "d"],
            "s2": ["A", "B", "C", "D"],
            "score": [0.5, 1.0, 2.0, float("nan")],
            "negs": pa.array([["n1"], [], None, ["n2", "n3"]], pa.list_(pa.string())),
        }
    )
    path = tmp_path / "pairs-test.parquet"
    pq.write_table(table, path)
    spec = TextSourceSpec(text_columns=(0, "s2"), score_column=2)
    records = _read(path, spec)
    assert [(r.id, r.text1, r.text2, r.score, r.split) for r in _good(records)[:2]] == [
        ("pairs-test:000001", "a", "A", 0.5, "test"),
        ("pairs-test:000002", "b", "B", 1.0, "test"),
    ]
    assert _reasons(records) == ["pairs-test.parquet row 3: column 's1' (text1) is null"]
    # NaN passes the reader (it is a number); the store quarantines it.
    assert str(_good(records)[2].score) == "nan"
    spec = TextSourceSpec(text_columns=("s1", "s2"), negative_columns=("negs",))
    negatives = [r.negatives for r in _good(_read(path, spec))]
    assert negatives == [("n1",), (), ("n2", "n3")]


def test_parquet_unknown_column_fails_before_reading(tmp_path):
    pq.write_table(pa.table({"a": ["x"], "b": ["y"]}), tmp_path / "p.parquet")
    with pytest.raises(IngestError, match=r"has no column \['c', 5\]; its columns are \['a', 'b'"):
        open_text_source(tmp_path / "p.parquet", TextSourceSpec(text_columns=("c", 5)))
    _write(tmp_path / "broken.parquet", b"PAR1 not really")
    with pytest.raises(IngestError, match="cannot read Parquet file"):
        open_text_source(tmp_path / "broken.parquet", TextSourceSpec())


# ---- gzip ----------------------------------------------------------------------------------

STSB_HEADER = "split\tgenre\tdataset\tyear\tsid\tscore\tsentence1\tsentence2\n"
STSB_SPEC = TextSourceSpec(
    text_columns=("sentence1", "sentence2"), score_column="score", split_column="split",
    header=True,
)


def test_gzipped_tsv_with_header_and_split_column(tmp_path):
    # sentence-transformers' stsbenchmark.tsv.gz; "dev" rows land in val, as sts-dev.csv's do.
    # A byte-order mark, a CRLF and a Latin-1 line behave as in a plain file.
    lines = [
        ("\ufeff" + STSB_HEADER).encode(),
        b"train\tmain-captions\tMSRvid\t2012test\t1\t5.000\tA plane.\tAn air plane.\n",
        b"dev\tmain-forums\tdeft-forum\t2014\t2\t1.5\tA man.\tA woman.\r\n",
        b"test\tg\td\ty\t3\t2.0\tcaf\xe9\tx\n",
        b"TEST\tg\td\ty\t4\t0\tA.\tB.\n",
    ]
    path = _write_gz(tmp_path / "stsbenchmark.tsv.gz", b"".join(lines))
    source = open_text_source(path, STSB_SPEC)
    assert source.formats == ["tsv"]
    records = list(source.records)
    assert [(r.id, r.text1, r.text2, r.score, r.split) for r in _good(records)] == [
        ("stsbenchmark:000002", "A plane.", "An air plane.", 5.0, "train"),
        ("stsbenchmark:000003", "A man.", "A woman.", 1.5, "val"),
        ("stsbenchmark:000005", "A.", "B.", 0.0, "test"),
    ]
    assert _reasons(records) == [
        "stsbenchmark.tsv.gz line 4: the line is not valid UTF-8 (invalid continuation byte at "
        "byte 20)"
    ]


def test_gzipped_jsonl(tmp_path):
    lines = [json.dumps({"a": "x1", "b": "y1"}), "{broken", json.dumps({"a": "x3", "b": "y3"})]
    path = _write_gz(tmp_path / "pairs.jsonl.gz", "\n".join(lines) + "\n")
    source = open_text_source(path, TextSourceSpec(text_columns=("a", "b")))
    assert source.formats == ["jsonl"]
    records = list(source.records)
    assert [(r.id, r.text1, r.text2, r.split) for r in _good(records)] == [
        ("pairs:000001", "x1", "y1", None), ("pairs:000003", "x3", "y3", None)
    ]
    assert _reasons(records) == [
        "pairs.jsonl.gz line 2: not valid JSON (Expecting property name enclosed in double "
        "quotes at column 2)"
    ]


def test_gzipped_csv_is_sniffed_and_keeps_multiline_rows(tmp_path):
    text = 'id,s1,s2\nr1,"Hello, world.","Over\ntwo lines."\nr2,Plain,Also plain\n'
    commas = _write_gz(tmp_path / "x.csv.gz", text)
    spec = TextSourceSpec(text_columns=("s1", "s2"), id_column="id", header=True)
    source = open_text_source(commas, spec)
    assert source.formats == ["csv"]
    assert [(r.id, r.text1, r.text2) for r in source.records] == [
        ("r1", "Hello, world.", "Over\ntwo lines."), ("r2", "Plain", "Also plain")
    ]
    tabs = _write_gz(tmp_path / "sts-train.csv.gz", _sts_line("3", "a, b", '"c') + "\n")
    assert open_text_source(tabs, STS).formats == ["tsv"]
    assert [(r.text1, r.text2) for r in _read(tabs, STS)] == [("a, b", '"c')]


def test_folder_mixes_plain_and_gzipped_files(tmp_path):
    _write(tmp_path / "sts-train.tsv", "t1\tt2\n")
    _write_gz(tmp_path / "sts-test.tsv.gz", "g1\tg2\n")
    _write_gz(tmp_path / "LICENSE.txt.gz", "Some license\twith a tab\n")
    pq.write_table(pa.table({"a": ["p"], "b": ["q"]}), tmp_path / "plain.parquet")
    _write_gz(tmp_path / "packed.parquet.gz", (tmp_path / "plain.parquet").read_bytes())
    source = open_text_source(tmp_path, TextSourceSpec())
    assert [p.name for p in source.files] == ["plain.parquet", "sts-test.tsv.gz", "sts-train.tsv"]
    assert source.formats == ["parquet", "tsv", "tsv"]
    assert [(r.id, r.text1, r.split) for r in source.records] == [
        ("plain:000001", "p", None), ("sts-test:000001", "g1", "test"),
        ("sts-train:000001", "t1", "train"),
    ]
    # An explicit format falls back to .txt files, gzipped ones too.
    sentences = tmp_path / "sentences"
    _write_gz(sentences / "wiki.txt.gz", "One.\nTwo.\n")
    source = open_text_source(sentences, TextSourceSpec(format="tsv", text_columns=(0,)))
    assert [r.text1 for r in source.records] == ["One.", "Two."]
    with pytest.raises(IngestError, match=r"packed.parquet.gz is gzipped Parquet"):
        open_text_source(tmp_path / "packed.parquet.gz", TextSourceSpec())


def test_damaged_gzip_raises_ingest_error_naming_file_and_line(tmp_path):
    # Hex digests barely compress, so cutting the file in half cuts the rows about in half.
    lines = [f"{i}\t{hashlib.sha256(str(i).encode()).hexdigest()}\n" for i in range(2000)]
    whole = gzip.compress("".join(lines).encode())
    path = _write(tmp_path / "cut.tsv.gz", whole[: len(whole) // 2])
    records = open_text_source(path, TextSourceSpec()).records  # nothing is read at open
    read = []
    with pytest.raises(IngestError, match=r"cannot decompress .*cut\.tsv\.gz after line") as error:
        for record in records:
            read.append(record)
    reached = int(str(error.value).split("after line ")[1].split(":")[0])
    assert 0 < reached < 2000 and len(_good(read)) == reached
    # A .gz that is not gzip at all fails at open when its first line is read (CSV sniffing).
    _write(tmp_path / "plain.csv.gz", "a,b\n")
    with pytest.raises(IngestError, match=r"cannot decompress .*plain\.csv\.gz after line 0"):
        open_text_source(tmp_path / "plain.csv.gz", TextSourceSpec())


def test_default_ids_use_full_names_only_for_shared_stems(tmp_path):
    _write(tmp_path / "a.tsv", "x\ty\n")
    _write(tmp_path / "a.csv", "x,y\n")
    _write_gz(tmp_path / "b.tsv.gz", "x\ty\n")
    _write(tmp_path / "c.tsv", "x\ty\n")
    ids = [r.id for r in _read(tmp_path, TextSourceSpec())]
    assert ids == ["a.csv:000001", "a.tsv:000001", "b:000001", "c:000001"]
    _write_gz(tmp_path / "c.tsv.gz", "x\ty\n")  # c again, compressed
    (tmp_path / "a.csv").unlink()
    ids = [r.id for r in _read(tmp_path, TextSourceSpec())]
    assert ids == ["a:000001", "b:000001", "c.tsv:000001", "c.tsv.gz:000001"]
    # A file read on its own keeps "<stem>:<line>".
    assert [r.id for r in _read(tmp_path / "a.tsv", TextSourceSpec())] == ["a:000001"]


# ---- folders, formats, splits, limit -------------------------------------------------------


def test_folder_with_auto_format_ignores_license_txt_hidden_files_and_subfolders(tmp_path):
    folder = tmp_path / "stsb"
    _write(folder / "sts-train.csv", _sts_line("1", "t1", "t2") + "\n")
    _write(folder / "sts-dev.csv", _sts_line("2", "d1", "d2") + "\n")
    _write(folder / "LICENSE.txt", "Some license\twith a tab\n")
    _write(folder / ".hidden.tsv", "x\ty\n")
    _write(folder / "nested" / "more.tsv", "x\ty\n")
    source = open_text_source(folder, STS)
    assert source.description == str(folder.resolve())
    assert [p.name for p in source.files] == ["sts-dev.csv", "sts-train.csv"]
    assert [(r.id, r.split) for r in source.records] == [
        ("sts-dev:000001", "val"), ("sts-train:000001", "train")
    ]


def test_folder_with_explicit_format_reads_txt_files_only_without_data_files(tmp_path):
    _write(tmp_path / "a.txt", "one\ttwo\n")
    _write(tmp_path / "b.jsonl", '{"x": 1}\n')
    source = open_text_source(tmp_path, TextSourceSpec(format="tsv"))
    assert [p.name for p in source.files] == ["a.txt"]  # a folder of plain sentence files
    assert [p.name for p in open_text_source(tmp_path, STS_JSONL).files] == ["b.jsonl"]
    _write(tmp_path / "sts-train.csv", "one\ttwo\n")
    source = open_text_source(tmp_path, TextSourceSpec(format="tsv"))
    assert [p.name for p in source.files] == ["sts-train.csv"]  # LICENSE.txt-like files: no
    with pytest.raises(IngestError, match=r"holds no .parquet file for format 'parquet' \(it ho"):
        open_text_source(tmp_path, TextSourceSpec(format="parquet"))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.tsv", "does not exist"),
        (lambda p: p, "holds no .csv/.json/.jsonl/.parquet/.tsv file"),
        (lambda p: _write(p / "notes.txt", "a\tb\n"), "cannot tell the format of .*notes.txt"),
    ],
    ids=["missing", "empty-folder", "txt-with-auto"],
)
def test_unusable_sources_raise_ingest_error(tmp_path, make, message):
    with pytest.raises(IngestError, match=message):
        open_text_source(make(tmp_path), TextSourceSpec())


def test_spec_that_does_not_fit_the_file_fails_at_open(tmp_path):
    tsv = _write(tmp_path / "h.tsv", "first\tsecond\nx\ty\n")
    with pytest.raises(IngestError, match=r"has no column \['third'\]; its columns are"):
        open_text_source(tsv, TextSourceSpec(text_columns=("first", "third"), header=True))
    with pytest.raises(IngestError, match="without a header line .* not names"):
        open_text_source(tsv, TextSourceSpec(text_columns=("first", "second")))
    jsonl = _write(tmp_path / "j.jsonl", '{"a": "x"}\n')
    with pytest.raises(IngestError, match="is JSONL, whose fields have no order"):
        open_text_source(jsonl, TextSourceSpec())  # the default columns are positions (0, 1)


@pytest.mark.parametrize(
    "name, split",
    [
        ("sts-train.csv", "train"),
        ("sts-dev.csv", "val"),
        ("snli_1.0_test.jsonl", "test"),
        ("Valid.tsv", "val"),
        ("part-validation-003.parquet", "val"),
        ("trainset.tsv", None),
        ("sentences.txt", None),
        ("sts-dev.tsv.gz", "val"),
        ("STS-Train.CSV.GZ", "train"),
        ("pairs-test.jsonl.gz", "test"),
    ],
)
def test_split_from_file_name(name, split):
    assert split_from_file_name(name) == split


def test_limit_counts_good_records_and_stops_reading(tmp_path):
    _write(tmp_path / "a.tsv", "bad line\nx1\ty1\nx2\ty2\n")
    _write(tmp_path / "b.tsv", "z\tz\n")
    records = _read(tmp_path, TextSourceSpec(), limit=2)
    assert [type(r).__name__ for r in records] == ["BadRecord", "TextPairRecord", "TextPairRecord"]
    assert [r.text1 for r in _good(records)] == ["x1", "x2"]
    with pytest.raises(ValueError, match="limit"):
        open_text_source(tmp_path, TextSourceSpec(), limit=0)
