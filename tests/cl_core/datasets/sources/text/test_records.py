"""TextPairRecord / TEXT_SCHEMA."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from cl_core.datasets import TEXT_SCHEMA, TextPairRecord


def test_schema_types_and_nullability():
    expected = {
        "id": (pa.string(), False),
        "text1": (pa.string(), False),
        "text2": (pa.string(), True),
        "score": (pa.float64(), True),
        "label": (pa.int64(), True),
        "negatives": (pa.list_(pa.string()), True),
        "split": (pa.string(), False),
    }
    assert {f.name: (f.type, f.nullable) for f in TEXT_SCHEMA} == expected


def test_defaults_frozen_and_short_repr():
    record = TextPairRecord("a", "word " * 100)
    assert (record.text2, record.score, record.label, record.negatives, record.split) == (
        None, None, None, (), None
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.score = 1.0
    text = repr(record)
    assert len(text) < 200 and "text1='word word" in text and "...'" in text
    assert "negatives=<0>" in text
    assert "negatives=<2>" in repr(TextPairRecord("b", "x", negatives=("n", "m")))
    assert "negatives='oops'" in repr(TextPairRecord("c", "x", negatives="oops"))
