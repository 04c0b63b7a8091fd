"""`trainlab ensemble RUN_DIR [RUN_DIR ...]`: average the predicted probabilities of trained runs
(the lecture's model ensembles) and report each member's and the ensemble's test accuracy.

`trainlab ensemble --study NAME_OR_DIR [--storage URL] --top K` takes the K best trials of a
search study by the study's own leaderboard (complete trials by validation accuracy, then
pruned ones; diverged, failed and interrupted ones left out): the lecture's "maybe with
different hyperparameters", the models a search leaves behind.
"""

from __future__ import annotations

import argparse

import trainlab
from trainlab.commands.output import add_common, console, emit_json
from trainlab.commands.tables import pct, print_table, readable, table
from trainlab.rundir import BEST, DEFAULT_STORAGE


def cmd_ensemble(args: argparse.Namespace) -> int:
    out = trainlab.ensemble(
        args.run_dirs,
        study=args.study,
        top=args.top,
        checkpoint=args.checkpoint,
        storage=args.storage,
    )
    title = f"ensemble of {out['size']} ({out['checkpoint']}, {out['examples']} test examples)"
    if out.get("study"):
        title += f", top {out['size']} of study {out['study']} by its leaderboard"
    rows = table(title, [("member", "left"), "val acc", "test acc"])
    for m in out["members"]:
        rows.add_row(m["run_dir"], pct(m.get("val_accuracy")), pct(m["test_accuracy"]))
    rows.add_section()
    rows.add_row("mean of members", "", pct(out["mean_member_test_accuracy"]))
    rows.add_row(
        "[bold]ensemble[/]", pct(out.get("val_accuracy")), f"[bold]{pct(out['test_accuracy'])}[/]"
    )
    c = readable(console(args.json))
    print_table(c, rows)
    if args.json:
        emit_json(out)
    return 0


def add_parser(sub) -> None:  # noqa: ANN001
    p = sub.add_parser(
        "ensemble",
        help="average the predictions of trained runs (or the best trials of a search study)",
    )
    p.add_argument(
        "run_dirs",
        nargs="*",
        metavar="RUN_DIR",
        help="run directories (an ensemble run stands for its members)",
    )
    p.add_argument(
        "--study",
        metavar="NAME_OR_DIR",
        help="ensemble the best trials of this study (its name, or its directory)",
    )
    p.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help=f"the study's Optuna storage URL (default {DEFAULT_STORAGE})",
    )
    p.add_argument(
        "--top",
        type=int,
        default=5,
        metavar="K",
        help="with --study: how many trials, in the order of the study's leaderboard "
        "(complete trials by val accuracy, then pruned ones; default 5)",
    )
    p.add_argument(
        "--checkpoint",
        default=BEST,
        help="which weights of each run (default best.pt; ema.pt for Polyak averages)",
    )
    add_common(p)
    p.set_defaults(func=cmd_ensemble)
