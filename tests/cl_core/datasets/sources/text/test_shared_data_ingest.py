"""Ingest of the real STS Benchmark files in ../shared/data/stsb (skipped when absent).

The files are tab-separated though named .csv, 197 train rows carry two extra trailing columns,
and sentences contain unbalanced quote characters: all of them must come through by position.
"""

from __future__ import annotations

import pytest

from cl_core.datasets import DatasetStore, TextSourceSpec

pytestmark = pytest.mark.shared_data

STSB_SPEC = TextSourceSpec(text_columns=(5, 6), score_column=4)


@pytest.fixture
def stsb(tmp_path, shared_data):
    """(folder, IngestResult, DatasetVersion, {id: row}); the ingest takes well under a second."""
    folder = shared_data("stsb")
    store = DatasetStore(tmp_path / "store")
    result = store.ingest_text(str(folder), "stsb", STSB_SPEC)
    version = store.resolve("stsb")
    rows = {row["id"]: row for row in version.read().to_pylist()}
    return folder, result, version, rows


def _lines(folder, file):
    """The tab-separated fields of each line of `file`, read independently of the reader."""
    return [line.split("\t") for line in (folder / file).read_text(encoding="utf-8").split("\n")]


def test_every_row_ingests_with_the_split_from_the_file_name(stsb):
    folder, result, version, _ = stsb
    assert result.splits == {"train": 5_749, "val": 1_500}
    assert (result.rows, result.quarantined, result.quarantine_path) == (7_249, 0, None)
    assert result.channels is None and version.kind == "text"
    manifest = version.manifest
    assert manifest["source"] == str(folder.resolve())  # LICENSE.txt beside them is not read
    assert (manifest["pairs"], manifest["scored_rows"]) == (7_249, 7_249)
    assert (manifest["score_min"], manifest["score_max"]) == (0.0, 5.0)
    assert manifest["labels"] == [] and manifest["unlabeled_rows"] == 7_249


def test_nine_column_rows_keep_their_sentences(stsb):
    folder, _, _, rows = stsb
    lines = _lines(folder, "sts-train.csv")
    # awk -F'\t' 'NF==9' sts-train.csv | head -1  ->  line 5553
    assert len(lines[5553 - 1]) == 9
    row = rows["sts-train:005553"]
    assert row["text1"] == "Driver backs into stroller with child, drives off"
    assert row["text2"] == "Driver backs into mom, stroller with child then drives off"
    assert row["score"] == 4.0 and row["split"] == "train"
    nine = [i for i, fields in enumerate(lines, 1) if len(fields) == 9]
    assert len(nine) == 197
    for i in nine:
        fields = lines[i - 1]
        row = rows[f"sts-train:{i:06d}"]
        expected = (fields[5], fields[6], float(fields[4]))
        assert (row["text1"], row["text2"], row["score"]) == expected


def test_quote_characters_survive_intact(stsb):
    _, _, _, rows = stsb
    # grep -n '"' sts-train.csv: line 1524 quotes a word, line 2002 opens a quote it never
    # closes (a CSV quote rule would swallow the following lines into this sentence).
    assert rows["sts-train:001524"]["text1"] == 'A dog in a "superman" shirt sleeps on a blanket.'
    assert rows["sts-train:001524"]["score"] == 4.0
    assert rows["sts-train:002002"]["text1"] == '"Then the captain was gone.'
    assert rows["sts-train:002002"]["text2"] == "Then the captain came back."
    assert rows["sts-train:002003"]["text1"] != rows["sts-train:002002"]["text1"]


@pytest.mark.parametrize("fmt", ["auto", "tsv"])
def test_reingest_gives_the_same_version_and_writes_nothing(stsb, fmt):
    folder, result, version, _ = stsb
    store = DatasetStore(version.path.parent.parent)
    # format "tsv" too: with an explicit format LICENSE.txt must still not be read as data.
    spec = TextSourceSpec(format=fmt, text_columns=(5, 6), score_column=4)
    again = store.ingest_text(str(folder), "stsb", spec)
    assert (again.version, again.created, again.quarantined) == (result.version, False, 0)
    assert store.versions("stsb") == [result.version]
