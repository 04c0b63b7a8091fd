"""`trainlab train CONFIG [--set K=V ...] [--out DIR] [--resume] [--json]`: one run of a config
(the Python form: trainlab.train)."""

from __future__ import annotations

import argparse
from pathlib import Path

import trainlab
from trainlab.commands.dashboard import hint_callback
from trainlab.commands.output import ProgressBar, add_common, add_set, print_result
from trainlab.errors import UserError
from trainlab.rundir import config_dirs, default_run_dir, latest_run_dir


def cmd_train(args: argparse.Namespace) -> int:
    from trainlab.config import load_config  # heavy: torch loads only when the command runs

    cfg = load_config(args.config, args.set)
    out = args.out
    if args.resume and out is None:
        out = latest_run_dir(args.config)
        if out is None:
            raise UserError(f"--resume: no earlier run of {args.config} under runs/; give --out")
    out = out or default_run_dir(args.config)
    with ProgressBar(cfg.train.epochs) as bar:
        result = trainlab.train(
            cfg,
            out=out,
            resume=args.resume,
            callbacks=[bar.callback(), hint_callback(Path(out).parent)],
            search_dirs=config_dirs(args.config),  # plugins next to the config
        )
    print_result(result.to_dict(), args.json)
    return 0


def add_parser(sub) -> None:  # noqa: ANN001
    p = sub.add_parser("train", help="train one model from a YAML config")
    p.add_argument("config", help="experiment config (YAML)")
    add_set(p)
    p.add_argument("--out", help="run directory (default runs/<config stem>-<time>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (or the newest run of this config)",
    )
    add_common(p)
    p.set_defaults(func=cmd_train)
