"""TextSourceSpec (cl_core/config/text_source.py, the data.text section), as text sources use it: validation."""

from __future__ import annotations

import pytest

from cl_core.datasets import TextSourceSpec


def test_defaults_and_roles():
    spec = TextSourceSpec()
    assert (spec.format, spec.text_columns, spec.header) == ("auto", (0, 1), False)
    spec = TextSourceSpec(
        text_columns=["q"], score_column="s", label_column="y", negative_columns=["n1", "n2"],
        id_column="id", split_column="part", format="jsonl",
    )
    assert spec.text_columns == ("q",) and spec.negative_columns == ("n1", "n2")  # lists frozen
    assert spec.roles() == [
        ("text1", "q"), ("score", "s"), ("label", "y"), ("negative 1", "n1"),
        ("negative 2", "n2"), ("id", "id"), ("split", "part"),
    ]
    assert hash(spec) == hash(TextSourceSpec(**{**spec.__dict__}))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"format": "xlsx"}, "format must be one of"),
        ({"text_columns": ()}, "must name 1 column"),
        ({"text_columns": (0, 1, 2)}, "must name 1 column"),
        ({"text_columns": "sentence"}, "text_columns must be a tuple of columns"),
        ({"negative_columns": "neg"}, "negative_columns must be a tuple"),
        ({"text_columns": (0, -1)}, "text2 column must be a 0-based column position >= 0"),
        ({"score_column": True}, "score column must be a 0-based column position .* got True"),
        ({"label_column": 1.5}, "label column must be"),
        ({"text_columns": ("a", " "), "header": True}, "text2 column must not be an empty name"),
        ({"text_columns": (0, 1), "score_column": 1}, "column 1 is given as both text2 and score"),
        ({"format": "jsonl"}, r"JSONL fields have no order.*text1=0, text2=1"),
        ({"format": "tsv", "text_columns": ("a", "b")}, "TSV without a header line"),
        ({"format": "csv", "text_columns": (0, 1), "id_column": "id"}, r"id='id'"),
        ({"header": "yes"}, "header must be True or False"),
    ],
)
def test_invalid_specs_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TextSourceSpec(**kwargs)


def test_names_need_a_header_only_for_tsv_and_csv():
    TextSourceSpec(format="csv", text_columns=("a", 1), header=True)
    TextSourceSpec(format="parquet", text_columns=("a", 1))
    TextSourceSpec(text_columns=("a", "b"))  # "auto": checked against each file when opened
