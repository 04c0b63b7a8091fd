"""`trainlab eval RUN_DIR [--data-path P] [--tta MODE] [--model pkg.module:factory] [--json]`: a
finished run on its test split or on new data (the Python form: trainlab.evaluate)."""

from __future__ import annotations

import argparse

import trainlab
from trainlab import names
from trainlab.commands.output import add_common, console, emit_json, fmt_pct


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.table import Table  # the table only when printed

    result = trainlab.evaluate(
        args.run_dir, data_path=args.data_path, tta=args.tta, model=args.model
    )
    out = console(args.json)
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


def add_parser(sub) -> None:  # noqa: ANN001
    p = sub.add_parser("eval", help="evaluate a finished run on its test split or new data")
    p.add_argument("run_dir")
    p.add_argument("--data-path", help="new data of the same shape (.npz, .csv, image folder)")
    p.add_argument(
        "--tta",
        choices=names.TTA_MODES,
        default=None,
        help="test-time augmentation (default: the run's train.tta)",
    )
    p.add_argument(
        "--model",
        metavar="MODULE:FACTORY",
        help="load the weights into factory(input_shape, num_classes, **model.args) instead "
        "of the run's model.kind (a run trained on a model object)",
    )
    add_common(p)
    p.set_defaults(func=cmd_eval)
