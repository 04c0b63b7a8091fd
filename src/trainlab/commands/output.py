"""What the commands print: rich tables and progress bars, `--json` output, the shared options.
Part of the CLI layer (with trainlab.cli and the command modules), the only code that prints."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from trainlab.report.progress import BarView, percent


def console(as_json: bool):  # noqa: ANN201
    from rich.console import Console

    return Console(stderr=True) if as_json else Console()


fmt_pct = percent


_json_out: list[TextIO] = []  # the command's real stdout while `json_stdout` holds it


@contextlib.contextmanager
def json_stdout(on: bool) -> Iterator[None]:
    """While a `--json` command runs (`on`), whatever else writes to stdout (the user's plugin
    at import, its factory, its model's forward pass, a library) writes to stderr: stdout holds
    exactly the one JSON object `emit_json` prints."""
    if not on:
        yield
        return
    _json_out.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _json_out.pop()


def emit_json(obj: dict[str, Any]) -> None:
    """Print `obj` as one line of strict JSON (RFC 8259) on the command's stdout: NaN and
    infinities, which JSON has no spelling for, are null, so every JSON reader takes it."""
    out = _json_out[-1] if _json_out else sys.stdout
    out.write(json.dumps(_finite(obj), allow_nan=False) + "\n")
    out.flush()


def _finite(value: Any) -> Any:
    """`value` with every non-finite float (in dicts, lists and tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def result_table(result: dict[str, Any], title: str = "result"):  # noqa: ANN201
    from rich.table import Table

    table = Table(title=title)
    for col in ("epochs", "best epoch", "seconds", "train acc", "val acc", "test acc", "stopped"):
        table.add_column(col, justify="right")
    table.add_row(
        str(result["epochs"]),
        str(result["best_epoch"]),
        f"{result['seconds']:.1f}",
        fmt_pct(result["train_accuracy"]),
        fmt_pct(result["val_accuracy"]),
        fmt_pct(result["test_accuracy"]),
        result["stopped_reason"],
    )
    return table


def print_result(result: dict[str, Any], as_json: bool, title: str = "result") -> None:
    out = console(as_json)
    out.print(result_table(result, title))
    extras = {k: v for k, v in result.items() if k.endswith("_test_accuracy")}
    for key, value in extras.items():
        out.print(f"{key.replace('_', ' ')}: {fmt_pct(value)}")
    for a in result.get("advice", []):
        out.print(f"[bold yellow]advice[/] [{a['code']}] {a['message']}", highlight=False)
    out.print(f"run directory: {result['run_dir']}", highlight=False)
    if as_json:
        emit_json(result)


class ProgressBar:
    """The CLI's per-epoch bar on stderr (trainlab.report.progress's bar, always shown), moved by
    the engine callback `callback()` returns."""

    def __init__(self, total: int, label: str = "train") -> None:
        self.view = BarView(total, label)

    def __enter__(self) -> ProgressBar:
        return self  # the bar appears when training starts, so set-up errors stay one line

    def __exit__(self, *exc: object) -> None:
        self.view.stop()

    def callback(self) -> Any:
        from trainlab.experiments.progress import EpochProgress  # torch: only commands that train

        return EpochProgress(self.view)


def add_set(
    p: argparse.ArgumentParser,
    what: str = "override a config field by dotted path, e.g. optim.lr=3e-3",
) -> None:
    """`--set KEY=VALUE` (repeatable): the config overrides every command parses the same way."""
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help=f"{what} (repeatable)"
    )


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json",
        action="store_true",
        help="print exactly one JSON object on stdout (progress goes to stderr)",
    )
