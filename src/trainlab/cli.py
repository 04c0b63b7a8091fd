"""The command line: the parser and main(); each command is a thin adapter over the Python API
in trainlab.commands (those and this are the only code that prints).

Exit status: 0 done (a diverged run is a result), 2 a user's mistake (one line on stderr),
130 interrupted by Ctrl-C after saving what can be resumed, 1 a bug (traceback).
`--json` prints exactly one JSON object on stdout; progress and tables go to stderr then.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from trainlab import commands
from trainlab.commands.output import json_stdout
from trainlab.errors import DataWarning, UserError, cli_wording
from trainlab.version import __version__


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -------------------------------------------------------------------------------------- parser
def build_parser(only: str | None = None) -> Parser:
    """The whole parser; with `only` (a command's name) only that command's part, which is
    all that parsing its arguments needs (an unknown name: the whole parser)."""
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

    commands.add_all(sub, only)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and not argv[0].startswith("-") else None  # -h, --version: all
    parser = build_parser(command)  # the command's own flags only: start-up stays short
    args = parser.parse_args(argv)
    try:
        # a DataWarning is one line, like a UserError; mistakes name the flags (--out, --resume)
        with warnings.catch_warnings(), cli_wording():
            warnings.simplefilter("default", DataWarning)
            warnings.showwarning = _warning_printer(args.command)
            with json_stdout(getattr(args, "json", False)):  # stdout: the JSON object alone
                return int(args.func(args) or 0)
    except UserError as err:
        sys.stderr.write(f"trainlab {args.command}: {err}\n")
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C, or a process of a run on many was killed
        why = str(err) or "trainlab: interrupted; what was done is saved, continue with --resume"
        sys.stderr.write(why + "\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
