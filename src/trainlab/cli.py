"""The command line: a thin layer over the Python API, and the only module that prints.

Exit status: 0 done (a diverged run is a result), 2 a user's mistake (one line on stderr),
130 interrupted by Ctrl-C after saving what can be resumed, 1 a bug (traceback).
`--json` prints exactly one JSON object on stdout; progress and tables go to stderr then.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from trainlab import commands
from trainlab.commands.dashboard import DashboardHint
from trainlab.commands.output import (
    ProgressBar,
    add_common,
    console,
    emit_json,
    fmt_pct,
    json_stdout,
    print_result,
)
from trainlab.config import load_config
from trainlab.engine.rundir import config_dirs, default_run_dir, latest_run_dir
from trainlab.errors import DataWarning, UserError
from trainlab.experiments import evaluate_run, train
from trainlab.version import __version__


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ------------------------------------------------------------------------------------ printing
# ------------------------------------------------------------------------------------ commands
def cmd_train(args: argparse.Namespace) -> int:

    cfg = load_config(args.config, args.set)
    out = args.out
    if args.resume and out is None:
        out = latest_run_dir(args.config)
        if out is None:
            raise UserError(f"--resume: no earlier run of {args.config} under runs/; give --out")
    out = out or default_run_dir(args.config)
    with ProgressBar(cfg.train.epochs) as bar:
        result = train(
            cfg,
            out=out,
            resume=args.resume,
            callbacks=[bar.callback(), DashboardHint(Path(out).parent)],
            search_dirs=config_dirs(args.config),  # plugins next to the config
        )
    print_result(result.to_dict(), args.json)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:

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

    commands.add_all(sub)
    return parser


def _warning_printer(command: str):  # noqa: ANN202
    """`warnings.showwarning` for main(): a DataWarning is one line on stderr."""

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        if issubclass(category, DataWarning):
            sys.stderr.write(f"trainlab {command}: warning: {message}\n")
        else:
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    return show


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():  # a DataWarning is one line, like a UserError
            warnings.simplefilter("default", DataWarning)
            warnings.showwarning = _warning_printer(args.command)
            with json_stdout(getattr(args, "json", False)):  # stdout: the JSON object alone
                return int(args.func(args) or 0)
    except UserError as err:
        sys.stderr.write(f"trainlab {args.command}: {err}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("trainlab: interrupted; what was done is saved, continue with --resume\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
