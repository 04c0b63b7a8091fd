"""`trainlab lr-find CONFIG`: the learning-rate range test, the lecture's "learning rate first".

The lr grows exponentially over a few hundred minibatch steps of the config's model, optimizer and
data, until the loss explodes; the plot shows loss against lr and the suggestion is marked.
"""

from __future__ import annotations

import argparse

from trainlab.commands.output import add_common, console, emit_json


def cmd_lr_find(args: argparse.Namespace) -> int:
    from trainlab.experiments.lr_find import run_lr_find  # heavy: torch loads only when it runs

    out = run_lr_find(args.config, args.set, args.steps, args.start_lr, args.end_lr, args.out)
    c = console(args.json)
    lr = out["suggested_lr"]
    c.print(
        f"learning-rate range test of {out['optimizer']} over {out['steps']} steps"
        f"{' (stopped when the loss exploded)' if out['stopped_early'] else ''}"
    )
    if lr is None:
        c.print(
            "no suggestion: the loss never fell clearly below its start; widen --end-lr or "
            "check the model and data"
        )
    else:
        c.print(
            f"suggested lr: [bold]{lr:.3g}[/] (the lr of the lowest smoothed loss, "
            f"{out['min_loss_lr']:.3g}, divided by 10); try "
            f"--set optim.lr={lr:.2g}"
        )
    c.print(f"plot: {out['plot']}", highlight=False)
    if args.json:
        emit_json(out)
    return 0


def add_parser(sub) -> None:  # noqa: ANN001
    p = sub.add_parser("lr-find", help="learning-rate range test: plot loss vs lr, suggest an lr")
    p.add_argument("config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--steps", type=int, default=200, help="minibatch steps (default 200)")
    p.add_argument("--start-lr", type=float, default=1e-7)
    p.add_argument("--end-lr", type=float, default=10.0)
    p.add_argument("--out", help="plot file (default runs/lr-find/<config stem>.png)")
    add_common(p)
    p.set_defaults(func=cmd_lr_find)
