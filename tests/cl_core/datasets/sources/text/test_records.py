"""TextPairRecord (TEXT_SCHEMA's columns: tests/cl_core/test_modalities.py)."""

from __future__ import annotations

import dataclasses

import pytest

from cl_core.datasets import TextPairRecord


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
