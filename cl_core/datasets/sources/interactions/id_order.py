"""The order of user and item ids: it numbers them (index i is the i-th id) and breaks ties in time.

Ids are stored as strings, but most sources number their users and items: "9" must come before
"10" there, as the source means it. So when every id of a kind is a plain integer ("0", "42",
"-3"; no sign "+", no leading zero, no spaces) ids are ordered as numbers, else as strings (by
code point). The rule is per kind and per version: user ids and item ids are judged apart.

    sorted_ids(["10", "9", "100"]) -> ["9", "10", "100"]
    sorted_ids(["b10", "b9"])       -> ["b10", "b9"]
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_INTEGER = re.compile(r"^(0|-?[1-9][0-9]*)$")


def all_integers(ids: Iterable[str]) -> bool:
    """Every id is a plain integer, written the one way `str(int)` writes it."""
    return all(_INTEGER.match(i) for i in ids)


def sorted_ids(ids: Iterable[str]) -> list[str]:
    """The distinct ids in id order (see the module docstring)."""
    distinct = set(ids)
    if all_integers(distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)
