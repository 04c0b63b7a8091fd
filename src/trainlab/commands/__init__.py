"""CLI commands that live in their own modules. Each module has `add_parser(subparsers)`, which
adds its subcommand and sets `func` (a function of the parsed args returning the exit status).
These modules are part of the CLI layer: they may print; nothing below them does."""

from __future__ import annotations

import importlib

MODULES = (
    "train",
    "eval",
    "lr_find",
    "landscape",
    "transfer",
    "ensemble",
    "search",
    "compare",
    "dashboard",
    "config",
)


def add_all(subparsers, only: str | None = None) -> None:  # noqa: ANN001
    """Every command's parser, or only the one of command `only` (`lr-find`, ...) when that
    is one: `trainlab dashboard` does not build (and import what builds) transfer's flags."""
    chosen = [m for m in MODULES if m == (only or "").replace("-", "_")] or MODULES
    for name in chosen:
        importlib.import_module(f"trainlab.commands.{name}").add_parser(subparsers)
