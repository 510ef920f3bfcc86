"""How `make test` shares its tests between two pytest-xdist workers (`-n 2`).

About a third of the suite's time is spent waiting (servers starting, `clpipe` processes
importing, Ray placing workers), so on 2 cores a second worker fills the gaps. Two rules keep the
run as cheap as it was on one worker:

- **A module never splits.** Its module fixtures (a `clpipe run`, a Ray session) start once, so
  the unit of work is the module, or a group of modules.
- **Modules that share an expensive session or package fixture go together** (`SHARED_FIXTURES`):
  the digits run, the two-node cluster. Split, each worker would build its own copy.

Slow modules are handed out first, so that the run does not end with one worker alone on a
three-minute module while the other idles.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

# fixture name -> the group of every module whose source names it (as a test's or a fixture's
# parameter, or in `usefixtures`)
SHARED_FIXTURES = {
    "digits_run": "digits-run",
    "digits_challenger": "digits-run",
    "two_node_cluster": "two-node-cluster",
    "tracking_server": "two-node-cluster",
}
_SHARED = re.compile(r"\b(" + "|".join(SHARED_FIXTURES) + r")\b")


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@cache
def group_of(root: Path, module: str) -> str:
    """The module's group: that of the first shared fixture its source names, else the module."""
    found = _SHARED.search((root / module).read_text())
    return SHARED_FIXTURES[found.group(1)] if found else module


def slow_modules_first(items: list[pytest.Item]) -> None:
    """Reorder `items` in place: modules with a `slow` test first, then those with an
    `integration` one, then the rest; collection order within each, modules kept whole."""
    weight: dict[str, int] = {}
    for item in items:
        marks = {mark.name for mark in item.iter_markers()}
        item_weight = 0 if "slow" in marks else 1 if "integration" in marks else 2
        module = module_of(item.nodeid)
        weight[module] = min(weight.get(module, 2), item_weight)
    items.sort(key=lambda item: weight[module_of(item.nodeid)])


class ModuleScheduling(LoadScopeScheduling):
    """xdist's scope scheduling with a module, or its group, as the unit of work. xdist's own
    `loadscope` splits a module's classes apart, and its `loadgroup` cannot be used: the group
    mark it reads never reaches the node ids under pytest 9 (xdist 3.8 sets `Item._nodeid`,
    which pytest 9 no longer reads)."""

    def _split_scope(self, nodeid: str) -> str:
        return group_of(self.config.rootpath, module_of(nodeid))
