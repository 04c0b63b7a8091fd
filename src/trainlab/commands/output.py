"""What the commands print: rich tables and progress bars, `--json` output, the shared options.
Part of the CLI layer (with trainlab.cli and the command modules), the only code that prints."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def console(as_json: bool):  # noqa: ANN201
    from rich.console import Console

    return Console(stderr=True) if as_json else Console()


def progress_console():  # noqa: ANN201
    from rich.console import Console

    return Console(stderr=True)


def fmt_pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


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
    """A per-epoch rich progress bar on stderr, as a trainer callback."""

    def __init__(self, total: int, label: str = "train") -> None:
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
            console=progress_console(),
            transient=False,
        )
        self.task = self.progress.add_task(label, total=total, status="")

    def __enter__(self) -> ProgressBar:
        return self  # the bar appears when training starts, so set-up errors stay one line

    def __exit__(self, *exc: object) -> None:
        if self.progress.live.is_started:  # stopping a bar never started prints an empty line
            self.progress.stop()

    def callback(self):  # noqa: ANN201
        from trainlab.engine.trainer import Callback  # heavy: torch loads only when training runs

        bar = self

        class _Cb(Callback):
            def on_train_start(self, trainer) -> None:  # noqa: ANN001
                bar.progress.start()
                bar.progress.update(bar.task, completed=trainer.state.epoch)

            def on_epoch_end(self, trainer, record) -> None:  # noqa: ANN001
                val = record.get("val_accuracy")
                bar.progress.update(
                    bar.task,
                    completed=record["epoch"],
                    status=(
                        f"loss {record['train_loss']:.4f}"
                        f"  train {fmt_pct(record['train_accuracy'])}  val {fmt_pct(val)}"
                    ),
                )

        return _Cb()


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
