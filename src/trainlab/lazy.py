"""Lazy re-exports for a package's `__init__` (PEP 562): each exported name is imported from its
module on first use, so importing the package loads nothing heavy (no torch, no Optuna).

A leaf: the standard library only.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def exports(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package` whose names live in the modules `where` gives
    (name -> module). The first name asked for from a module binds all of that module's names on
    the package, also those its import bound to a submodule of the same name
    (`trainlab.search.optimize` is the function, not the module)."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(where[name])
        for other, source in where.items():
            if source == where[name]:
                setattr(sys.modules[package], other, getattr(module, other))
        return getattr(module, name)

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
