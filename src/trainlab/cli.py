"""The command line: a thin layer over the Python API, and the only module that prints.

Exit status: 0 done (a diverged run is a result), 2 a user's mistake (one line on stderr),
130 interrupted by Ctrl-C after saving what can be resumed, 1 a bug (traceback).
`--json` prints exactly one JSON object on stdout; progress and tables go to stderr then.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from trainlab import __version__
from trainlab.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ------------------------------------------------------------------------------------ printing
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
        from trainlab.train import Callback

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


# ------------------------------------------------------------------------------------ commands
def cmd_train(args: argparse.Namespace) -> int:
    from trainlab.config import load_config
    from trainlab.train import train
    from trainlab.train.rundir import default_run_dir, latest_run_dir

    cfg = load_config(args.config, args.set)
    out = args.out
    if args.resume and out is None:
        out = latest_run_dir(args.config)
        if out is None:
            raise UserError(f"--resume: no earlier run of {args.config} under runs/; give --out")
    with ProgressBar(cfg.train.epochs) as bar:
        result = train(
            cfg,
            out=out or default_run_dir(args.config),
            resume=args.resume,
            callbacks=[bar.callback()],
        )
    print_result(result.to_dict(), args.json)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from trainlab.train import evaluate_run

    result = evaluate_run(args.run_dir, data_path=args.data_path, tta=args.tta)
    out = console(args.json)
    from rich.table import Table

    table = Table(title=f"evaluation of {args.run_dir}")
    for col in ("data", "examples", "loss", "accuracy"):
        table.add_column(col, justify="right")
    table.add_row(
        result["data"],
        str(result["examples"]),
        f"{result['loss']:.4f}",
        fmt_pct(result["accuracy"]),
    )
    out.print(table)
    if result.get("tta_accuracy") is not None:
        out.print(
            f"with test-time augmentation ({result['tta']}): {fmt_pct(result['tta_accuracy'])}"
        )
    if args.json:
        emit_json(result)
    return 0


# -------------------------------------------------------------------------------------- parser
def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json",
        action="store_true",
        help="print exactly one JSON object on stdout (progress goes to stderr)",
    )


def build_parser() -> Parser:
    parser = Parser(
        prog="trainlab",
        description="Train neural networks the way CS231n's "
        "'Training Neural Networks II' teaches: optimizers, schedules, regularization, "
        "ensembles, transfer learning, hyperparameter search and the curves that "
        "tell you what is going on. `trainlab COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"trainlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("train", help="train one model from a YAML config")
    p.add_argument("config", help="experiment config (YAML)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field by dotted path, e.g. optim.lr=3e-3 (repeatable)",
    )
    p.add_argument("--out", help="run directory (default runs/<config stem>-<time>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (or the newest run of this config)",
    )
    add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a finished run on its test split or new data")
    p.add_argument("run_dir")
    p.add_argument("--data-path", help="new data of the same shape (.npz, .csv, image folder)")
    p.add_argument(
        "--tta",
        choices=["none", "flip", "ten_crop"],
        default=None,
        help="test-time augmentation (default: the run's train.tta)",
    )
    add_common(p)
    p.set_defaults(func=cmd_eval)

    from trainlab import commands

    commands.add_all(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        sys.stderr.write(f"trainlab {args.command}: {err}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("trainlab: interrupted; what was done is saved, continue with --resume\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
