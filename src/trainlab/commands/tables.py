"""Tables the commands print, readable in a terminal, a pipe or a CI log.

Numbers are compact (3 significant digits), cells never wrap, and a console that is not a
terminal (where rich would assume 80 columns and break cells across lines) is widened to the
table's own width, up to `MAX_WIDTH`; plain lines are not wrapped there either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

MAX_WIDTH = 240
"""Widest a table is made away from a terminal (beyond it, rich shortens cells with "…")."""


def num(value: Any, digits: int = 3) -> str:
    """A number in `digits` significant digits (0.000701, 0.945, 1.23e+04); "-" for none."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return str(value)


def frac(value: float | None) -> str:
    """An accuracy (a fraction in [0, 1]) with 3 decimals: 0.945."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal: 94.5%."""
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def seconds(value: float | None) -> str:
    """Seconds: one decimal below 100, whole seconds above."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def table(title: str, columns: Sequence[str | tuple[str, str]]) -> Any:
    """A rich Table with a light header rule and columns that never wrap; a column is a name
    (right-aligned) or ``(name, justify)``."""
    from rich import box
    from rich.table import Table

    out = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in columns:
        name, justify = (col, "right") if isinstance(col, str) else col
        out.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis")
    return out


def readable(console: Any) -> Any:
    """The console, with soft wrapping on away from a terminal (long lines stay one line)."""
    if not console.is_terminal:
        console.soft_wrap = True
    return console


def print_table(console: Any, renderable: Any) -> None:
    """Print a table; away from a terminal at its own width (at most `MAX_WIDTH`), not 80."""
    if console.is_terminal:
        console.print(renderable)
        return
    from rich.measure import Measurement

    need = Measurement.get(console, console.options.update_width(MAX_WIDTH), renderable).maximum
    title = getattr(renderable, "title", None)
    if isinstance(title, str) and console.measure(title).maximum > need:  # would wrap: a line
        console.print(title, soft_wrap=True)
        renderable.title = None
    width = console.width
    console.width = max(width, need)
    try:
        console.print(renderable, soft_wrap=False)
    finally:
        console.width = width
