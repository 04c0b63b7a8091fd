"""`trainlab train CONFIG [--set K=V ...] [--out DIR] [--resume] [--nproc N] [--json]`: one run
of a config (the Python form: trainlab.train). `--nproc N` trains on N local processes; under
`torchrun ... -m trainlab train CONFIG` every process runs this command and rank 0 prints."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from trainlab.api import train
from trainlab.commands.dashboard import DashboardHint
from trainlab.commands.output import ProgressBar, add_common, add_set, print_result
from trainlab.config import load_config
from trainlab.engine.trainer import Callback
from trainlab.errors import UserError
from trainlab.rundir import config_dirs, default_run_dir, latest_run_dir


class SentBar(Callback):
    """The per-epoch bar as a callback that travels to the processes of `--nproc` (by pickle):
    rank 0 draws it, the other ranks draw nothing."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: ProgressBar | None = None
        self.hook: Callback | None = None

    def on_train_start(self, trainer) -> None:  # noqa: ANN001
        if trainer.ranks.main:
            self.bar = ProgressBar(self.total)
            self.hook = self.bar.callback()
            self.hook.on_train_start(trainer)

    def on_epoch_end(self, trainer, record) -> None:  # noqa: ANN001
        if self.hook is not None:
            self.hook.on_epoch_end(trainer, record)

    def on_train_end(self, trainer, result) -> None:  # noqa: ANN001
        if self.bar is not None:
            self.bar.__exit__()


def cmd_train(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    out = args.out
    if args.resume and out is None:
        out = latest_run_dir(args.config)
        if out is None:
            raise UserError(f"--resume: no earlier run of {args.config} under runs/; give --out")
    out = out or default_run_dir(args.config)
    hint = DashboardHint(Path(out).parent)
    dirs = config_dirs(args.config)  # plugins next to the config
    if args.nproc is not None:  # the bar travels to the processes: rank 0 draws it
        callbacks = [SentBar(cfg.train.epochs), hint]
        result = train(
            cfg,
            out=out,
            resume=args.resume,
            callbacks=callbacks,
            search_dirs=dirs,
            nproc=args.nproc,
            verbose=False,  # the command's own bar, shown also when stderr is not a terminal
        )
    elif os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 alone shows and prints
        result = train(
            cfg, out=out, resume=args.resume, callbacks=[hint], search_dirs=dirs, verbose=False
        )
    else:
        with ProgressBar(cfg.train.epochs) as bar:
            callbacks = [bar.callback(), hint]
            result = train(
                cfg,
                out=out,
                resume=args.resume,
                callbacks=callbacks,
                search_dirs=dirs,
                verbose=False,
            )
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
