"""splits.py: the one table of split names that every source kind reads."""

from __future__ import annotations

import pytest

from cl_core.datasets.records import SPLITS
from cl_core.datasets.splits import (
    SPLIT_ALIASES,
    canonical_split,
    describe_split_names,
    split_in_name,
)


@pytest.mark.parametrize(
    "name, split",
    [
        ("train", "train"),
        ("val", "val"),
        ("test", "test"),
        ("dev", "val"),
        ("valid", "val"),
        ("validation", "val"),
        (" Dev ", "val"),
        ("TEST", "test"),
        ("holdout", None),
        ("", None),
        ("training", None),
    ],
)
def test_canonical_split(name, split):
    assert canonical_split(name) == split


def test_every_alias_names_a_stored_split_and_none_shadows_one():
    assert set(SPLIT_ALIASES.values()) <= set(SPLITS)
    assert not set(SPLIT_ALIASES) & set(SPLITS)
    assert describe_split_names() == "train, val, test, or dev, valid, validation"


@pytest.mark.parametrize(
    "name, split",
    [
        ("sts-dev.tsv.gz", "val"),
        ("x_validation_003.parquet", "val"),
        ("toy-train-0000.tar.gz", "train"),
        ("dev-then-test.tsv", "val"),  # the first split word wins
        ("contest-0000.tar", None),
        ("devset.tsv", None),
    ],
)
def test_split_in_name_reads_whole_words(name, split):
    assert split_in_name(name) == split
