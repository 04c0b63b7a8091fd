"""`trainlab landscape`: our optimizers on the lecture's 2-parameter surfaces, as a picture and a
table (steps to tolerance, final loss, path length)."""

from __future__ import annotations

import argparse

from trainlab import names
from trainlab.commands.output import add_common, console, emit_json
from trainlab.errors import UserError


def parse_lrs(items: list[str]) -> dict[str, float]:
    lrs = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            lrs[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise UserError(f"--lr: expected NAME=VALUE such as momentum=0.01, got {item!r}")
    return lrs


def cmd_landscape(args: argparse.Namespace) -> int:
    from rich.table import Table

    from trainlab.landscape import run  # heavy: torch loads only when the command runs

    result = run(
        surface=args.surface,
        optimizers=args.optimizers,
        steps=args.steps,
        lrs=parse_lrs(args.lr),
        out=args.out,
        gif=args.gif,
        seed=args.seed,
    )
    c = console(args.json)
    table = Table(title=f"{result['surface']}: {result.get('claim', '')}", title_justify="left")
    for col in (
        "optimizer",
        "lr",
        f"steps to tol ({result['tol']:g})",
        "final loss",
        "path length",
    ):
        table.add_column(col, justify="right")
    for row in result["rows"]:
        table.add_row(
            row["optimizer"],
            f"{row['lr']:.3g}",
            "-" if row["steps_to_tol"] is None else str(row["steps_to_tol"]),
            "diverged" if row["final_loss"] is None else f"{row['final_loss']:.3g}",
            f"{row['path_length']:.3g}" if row["path_length"] is not None else "-",
        )
    c.print(table)
    c.print(
        f"plot: {result['plot']}" + (f"  gif: {result['gif']}" if result.get("gif") else ""),
        highlight=False,
    )
    if args.json:
        emit_json(result)
    return 0


def add_parser(sub) -> None:  # noqa: ANN001

    p = sub.add_parser(
        "landscape", help="optimizers on the lecture's loss surfaces (picture, table)"
    )
    p.add_argument("--surface", default="taco", help=f"one of {', '.join(names.SURFACES)}")
    p.add_argument(
        "--optimizers",
        default=None,
        help=f"comma-separated, from {','.join(names.MINIBATCH_OPTIMIZERS)} (default: the ones the "
        "surface is about)",
    )
    p.add_argument("--steps", type=int, default=None, help="steps per optimizer")
    p.add_argument(
        "--lr",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override an optimizer's tuned learning rate (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the gradient noise (noisy)")
    p.add_argument("--out", help="picture file (default runs/landscape/<surface>.png)")
    p.add_argument("--gif", action="store_true", help="also write an animated GIF beside it")
    add_common(p)
    p.set_defaults(func=cmd_landscape)
