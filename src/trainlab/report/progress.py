"""Progress views: the one place that shows how far long work has come (DESIGN.md, Pins).

In a terminal a view is a rich progress bar on stderr; in a Jupyter notebook an output that
updates in place (IPython.display, no widget library needed); with `verbose=False`, or when
neither (a log, a script with stderr redirected), nothing. The Python API (`trainlab.train`,
`search_config`, `optimize`, `compare`) and the CLI open their views here; nothing else prints
progress.

A view is fed `update(completed, status, record=..., total=...)`: `record` is what the step
produced (an epoch's metrics, a finished trial), for views that draw more than a line.
`set_notebook_view(kind, factory)` is the hook for such views in notebooks: the factory is called
as ``factory(total, label)`` for every view of that kind ("epochs": a run's epochs, "trials": a
search's trials, "runs": a comparison's runs) and returns a `View`.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable, Mapping
from typing import Any

KINDS = ("epochs", "trials", "runs")

ViewFactory = Callable[[int | None, str], "View"]
_notebook_views: dict[str, ViewFactory] = {}


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ZMQ shell, Colab) with a display."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if get is not None else None
    if shell is None:
        return False
    name = type(shell).__name__
    return name == "ZMQInteractiveShell" or "google.colab" in str(type(shell))


def shows(verbose: bool | None) -> bool:
    """Whether progress shows: `verbose` when given, else on in a terminal (stderr) or notebook."""
    if verbose is not None:
        return bool(verbose)
    isatty = getattr(sys.stderr, "isatty", None)
    return in_notebook() or bool(isatty and isatty())


class View:
    """A view that shows nothing (`verbose=False`); the base of the others."""

    def start(self) -> None:
        """Show the view (called when the work starts, so a set-up mistake stays one line)."""

    def update(
        self,
        completed: int,
        status: str = "",
        *,
        record: Mapping[str, Any] | None = None,
        total: int | None = None,
    ) -> None:
        """`completed` of `total` steps done; `status` a short line; `record` the step's data."""

    def note(self, message: str) -> None:
        """A one-line remark beside the view (not a progress step)."""

    def stop(self) -> None:
        """Leave the view as it is (the final state stays on screen unless transient)."""

    def __enter__(self) -> View:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BarView(View):
    """A rich progress bar on stderr: label, bar, done/total, status, time elapsed."""

    def __init__(self, total: int | None, label: str, *, transient: bool = False) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=transient,
        )
        self.task = self.progress.add_task(label, total=total, status="")

    def start(self) -> None:
        self.progress.start()  # a second start (the next member of an ensemble) does nothing

    def update(
        self,
        completed: int,
        status: str = "",
        *,
        record: Mapping[str, Any] | None = None,
        total: int | None = None,
    ) -> None:
        if not self.progress.live.is_started:
            self.start()
        fields: dict[str, Any] = {"completed": completed, "status": status}
        if total is not None:
            fields["total"] = total
        self.progress.update(self.task, **fields)

    def note(self, message: str) -> None:
        self.progress.console.print(f"note: {message}", highlight=False, markup=False)

    def stop(self) -> None:
        if self.progress.live.is_started:  # stopping a bar never started prints an empty line
            self.progress.stop()


class _Line:
    """What a notebook shows: a bar (HTML) with its text, or the text alone."""

    def __init__(self, text: str, completed: int, total: int | None) -> None:
        self.text, self.completed, self.total = text, completed, total

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        bar = (
            f'<progress value="{self.completed}" max="{self.total}"></progress> '
            if self.total
            else ""
        )
        return f"<div><code>{bar}{html.escape(self.text)}</code></div>"


class NotebookView(View):
    """One output in a notebook cell, updated in place (IPython's display handles)."""

    def __init__(self, total: int | None, label: str) -> None:
        self.total, self.label = total, label
        self.handle: Any = None

    def _show(self, line: _Line) -> None:
        from IPython.display import display  # present in a notebook kernel

        if self.handle is None:
            self.handle = display(line, display_id=True)
        else:
            self.handle.update(line)

    def start(self) -> None:
        if self.handle is None:
            self._show(_Line(f"{self.label}: starting", 0, self.total))

    def update(
        self,
        completed: int,
        status: str = "",
        *,
        record: Mapping[str, Any] | None = None,
        total: int | None = None,
    ) -> None:
        self.total = total if total is not None else self.total
        of = f"/{self.total}" if self.total else ""
        self._show(_Line(f"{self.label} {completed}{of}  {status}".rstrip(), completed, self.total))

    def note(self, message: str) -> None:
        from IPython.display import display

        display(_Line(f"note: {message}", 0, None))


def set_notebook_view(kind: str, factory: ViewFactory | None) -> None:
    """Use `factory(total, label) -> View` for views of `kind` in notebooks (None: the default
    line); e.g. a live plot of a run's curves for "epochs"."""
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    if factory is None:
        _notebook_views.pop(kind, None)
    else:
        _notebook_views[kind] = factory


def open_view(
    total: int | None, label: str, verbose: bool | None, kind: str = "epochs", **bar: Any
) -> View:
    """The view for work of `total` steps: nothing unless `shows(verbose)`; in a notebook the
    view set for `kind` (or a line that updates); else a bar on stderr (`bar`: BarView's
    options, e.g. ``transient=True``)."""
    if not shows(verbose):
        return View()
    if in_notebook():
        return _notebook_views.get(kind, NotebookView)(total, label)
    return BarView(total, label, **bar)


def percent(value: float | None) -> str:
    """A fraction as a percentage with two decimals ("-" when missing)."""
    return "-" if value is None else f"{100 * value:.2f}%"


def epoch_status(record: Mapping[str, Any]) -> str:
    """An epoch's record as the bar's status: training loss and accuracies."""
    return (
        f"loss {record['train_loss']:.4f}  train {percent(record.get('train_accuracy'))}"
        f"  val {percent(record.get('val_accuracy'))}"
    )
