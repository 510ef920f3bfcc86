"""splits.py: the one table of split names that every source kind reads."""

from __future__ import annotations

import pytest

from cl_core.datasets.records import SPLITS
from cl_core.datasets.splits import (
    SPLIT_ALIASES,
    canonical_split,
    carved_split,
    carves_val,
    check_val_fraction,
    describe_split_names,
    in_carved_val,
    split_for_id,
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


# ---- val carved from train -----------------------------------------------------------------


@pytest.mark.parametrize(
    "named, carves",
    [
        (["train", "test"], True),  # CIFAR-10's shards, an image folder with train/ and test/
        (["train", "train", "test"], True),
        (["train"], True),
        (["train", "val", "test"], False),  # the source has its own
        (["train", "test", None], False),  # an unnamed part: split_for_id gives it val rows
        ([None], False),  # digits, a class-per-folder image folder
        (["test"], False),  # nothing to carve from
    ],
)
def test_carves_val_only_when_the_source_names_train_and_no_val(named, carves):
    assert carves_val(named) is carves


def test_the_carved_share_is_close_to_the_fraction_and_nested():
    ids = [f"img-{i:05d}" for i in range(20_000)]
    tenth = {i for i in ids if in_carved_val(i, 0.1)}
    fifth = {i for i in ids if in_carved_val(i, 0.2)}
    assert abs(len(tenth) / len(ids) - 0.1) < 0.01 and abs(len(fifth) / len(ids) - 0.2) < 0.01
    assert tenth < fifth  # a larger fraction keeps every row a smaller one chose
    assert not any(in_carved_val(i, 0.0) for i in ids[:1000])
    # Salted: not the rows split_for_id would send to val.
    assert abs(len({i for i in tenth if split_for_id(i) == "val"}) / len(tenth) - 0.1) < 0.03


def test_carved_split_moves_chosen_train_rows_only():
    chosen = next(f"x{i}" for i in range(1000) if in_carved_val(f"x{i}", 0.1))
    kept = next(f"x{i}" for i in range(1000) if not in_carved_val(f"x{i}", 0.1))
    assert carved_split(chosen, "train", 0.1) == "val" and carved_split(kept, "train", 0.1) == "train"
    assert carved_split(chosen, "test", 0.1) == "test" and carved_split(chosen, None, 0.1) is None


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, True, "0.1", None])
def test_check_val_fraction_names_the_setting(bad):
    with pytest.raises(ValueError, match=r"data.val_fraction must lie in \[0, 1\)"):
        check_val_fraction(bad)
