"""The one table of split names: what sources call the splits a dataset is stored under.

Image folders (`root/dev/<class>/`), shard names (`x-dev-0000.tar`), text file names
(`sts-dev.csv`) and text split columns all go through `canonical_split`, so a name means the
same split whatever the source:

    canonical_split("Validation") -> "val"      split_in_name("sts-dev.tsv.gz") -> "val"

A row whose source names no split is stored under `split_for_id(row id)`.
"""

from __future__ import annotations

import hashlib
import re

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
