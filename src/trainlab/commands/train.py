"""`trainlab train CONFIG [--set K=V ...] [--out DIR] [--resume] [--nproc N] [--json]`: one run of
a config (the Python form: trainlab.train)."""

from __future__ import annotations

import argparse
import os

import trainlab
from trainlab.commands.output import ProgressBar, add_common, add_set, print_result
from trainlab.errors import UserError
from trainlab.rundir import config_dirs, default_run_dir, latest_run_dir


def cmd_train(args: argparse.Namespace) -> int:
    from trainlab.commands.callbacks import DashboardHint, SentBar  # heavy: torch, to train
    from trainlab.config import load_config  # heavy: torch loads only when the command runs

    cfg = load_config(args.config, args.set)
    out = args.out
    if args.resume and out is None:
        out = latest_run_dir(args.config)
        if out is None:
            raise UserError(f"--resume: no earlier run of {args.config} under runs/; give --out")
    out = out or default_run_dir(args.config)
    hint = DashboardHint(os.path.dirname(out) or ".")
    common = dict(out=out, resume=args.resume, search_dirs=config_dirs(args.config))
    common["verbose"] = False  # the command's own bar, shown also when stderr is not a terminal
    if args.nproc is not None:  # the bar travels to the processes: rank 0 draws it
        bar = SentBar(cfg.train.epochs)
        result = trainlab.train(cfg, callbacks=[bar, hint], nproc=args.nproc, **common)
    elif os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 alone shows and prints
        result = trainlab.train(cfg, callbacks=[hint], **common)
    else:
        with ProgressBar(cfg.train.epochs) as progress:
            result = trainlab.train(cfg, callbacks=[progress.callback(), hint], **common)
    if result is not None:
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
    p.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train on N local processes with torch.distributed (train.batch_size is the "
        "global batch); across machines use torchrun ... -m trainlab train CONFIG",
    )
    add_common(p)
    p.set_defaults(func=cmd_train)
