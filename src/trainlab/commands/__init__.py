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


def add_all(subparsers) -> None:  # noqa: ANN001
    for name in MODULES:
        importlib.import_module(f"trainlab.commands.{name}").add_parser(subparsers)
