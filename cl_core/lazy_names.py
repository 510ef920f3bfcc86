"""Public names of a package that load on first use (PEP 562), so that importing one light module
of the package does not import all of it."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, homes: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module `__getattr__` and `__dir__` of `package` for `homes` (public name -> the
    submodule, relative to `package`, that defines it); a loaded name is kept in the package."""
    namespace = vars(importlib.import_module(package))

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(homes))

    return __getattr__, __dir__


def lazy_exports(package: str, homes: Mapping[str, str]) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """`__all__` (the names of `homes`, sorted), `__getattr__` and `__dir__` of `package`, as
    `lazy_names` makes them: all a package whose public names all load on first use needs."""
    return sorted(homes), *lazy_names(package, homes)
