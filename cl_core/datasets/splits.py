"""The one table of split names: what sources call the splits a dataset is stored under.

Image folders (`root/dev/<class>/`), shard names (`x-dev-0000.tar`), text file names
(`sts-dev.csv`) and text split columns all go through `canonical_split`, so a name means the
same split whatever the source:

    canonical_split("Validation") -> "val"      split_in_name("sts-dev.tsv.gz") -> "val"

A row whose source names no split is stored under `split_for_id(row id)`. A source that names
train (and test) but no validation split (CIFAR-10's `cifar10-train-*.tar` / `-test-*.tar`, an
image folder with only train/ and test/) gets one carved from its train rows (`carves_val`,
`carved_split`): `val_fraction` of them (`data.val_fraction`, default VAL_FRACTION), chosen by a
hash of the row id, so the same rows each time and a re-ingest gives the same version.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from cl_core.datasets.records import SPLITS

# Other names for the stored splits (records.SPLITS: train, val, test); GLUE and STS-B say
# "dev", Hugging Face datasets "validation", Roboflow-style image folders "valid".
SPLIT_ALIASES = {"dev": "val", "valid": "val", "validation": "val"}


def canonical_split(name: str) -> str | None:
    """The stored split `name` stands for, ignoring case and surrounding spaces; None if none."""
    word = name.strip().lower()
    return word if word in SPLITS else SPLIT_ALIASES.get(word)


def split_in_name(name: str) -> str | None:
    """The split named by the first split word of a file name, else None.

    Words are separated by any non-alphanumeric character, so that "contest" is not "test":
    "toy-train-0000.tar.gz" -> "train", "pairs_test_2" -> "test", "trainset" -> None.
    """
    for word in re.split(r"[^a-z0-9]+", name.lower()):
        split = canonical_split(word)
        if split is not None:
            return split
    return None


def describe_split_names() -> str:
    """The names `canonical_split` accepts, for error messages: "train, val, test, or dev, ..."."""
    return f"{', '.join(SPLITS)}, or {', '.join(SPLIT_ALIASES)}"


def split_for_id(record_id: str) -> str:
    """Deterministic 80/10/10 train/val/test split from the sha1 of the id."""
    bucket = int.from_bytes(hashlib.sha1(record_id.encode("utf-8")).digest()[:8], "big") % 100
    if bucket < 80:
        return "train"
    return "val" if bucket < 90 else "test"


def carves_val(named_splits: Iterable[str | None]) -> bool:
    """Whether a source whose parts (shards, split folders, files) name `named_splits` (None: a
    part that names none) needs a validation split carved from its train rows: it names train
    and no val, and leaves no row to `split_for_id` (whose 10 % of val would do)."""
    named = set(named_splits)
    return "train" in named and "val" not in named and None not in named


def check_val_fraction(val_fraction: float) -> float:
    """`val_fraction` if it lies in [0, 1), else a ValueError naming the setting."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ValueError(f"data.val_fraction must lie in [0, 1), got {val_fraction!r}")
    return float(val_fraction)


def in_carved_val(record_id: str, val_fraction: float) -> bool:
    """Whether the train row `record_id` goes to val: the sha1 of "val:" + id, read as a number
    in [0, 1), is below `val_fraction`. Salted, so the choice does not follow `split_for_id` or
    the id's storage bucket; a fixed id always gets the same answer, and a larger fraction keeps
    every row a smaller one chose."""
    digest = hashlib.sha1(f"val:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


def carved_split(record_id: str, split: str | None, val_fraction: float) -> str | None:
    """`split`, except "val" for a train row that `in_carved_val` chooses."""
    return "val" if split == "train" and in_carved_val(record_id, val_fraction) else split
