"""`trainlab lr-find CONFIG`: the learning-rate range test, the lecture's "learning rate first".

The lr grows exponentially over a few hundred minibatch steps of the config's model, optimizer and
data, until the loss explodes; the plot shows loss against lr and the suggestion is marked.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def run_lr_find(
    config: str, overrides: list[str], steps: int, start_lr: float, end_lr: float, out: str | None
) -> dict:
    import torch

    from trainlab.config import load_config
    from trainlab.data import prepare
    from trainlab.errors import UserError
    from trainlab.nn.models import build_model
    from trainlab.optim import FULL_BATCH, create
    from trainlab.train.build import param_groups
    from trainlab.train.lr_find import lr_range_test, plot_lr_find

    cfg = load_config(config, overrides)
    if cfg.optim.name in FULL_BATCH:
        raise UserError(
            f"optim.name: lr-find runs minibatch steps; {cfg.optim.name} is "
            "full-batch and picks its own step with a line search"
        )
    splits = prepare(cfg.data)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, splits.input_shape, splits.num_classes)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    bs, n = cfg.train.batch_size, len(splits.x_train)

    def batches():
        while True:
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n - bs + 1 if n >= bs else 1, bs):
                idx = perm[i : i + bs]
                yield splits.x_train[idx], splits.y_train[idx]

    kwargs = {k: v for k, v in cfg.optim.kwargs().items() if k not in ("lr", "weight_decay")}

    def make_optimizer(_params, lr):
        groups = param_groups(model, cfg)
        for g in groups:  # keep each group's multiplier of the base lr
            g["lr"] = lr * g["lr"] / cfg.optim.lr
        return create(cfg.optim.name, groups, **{**kwargs, "lr": lr})

    result = lr_range_test(
        model, batches(), make_optimizer, start_lr=start_lr, end_lr=end_lr, steps=steps
    )
    plot = Path(out) if out else Path("runs") / "lr-find" / f"{Path(config).stem}.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot_lr_find(result, plot)
    return {
        "config": str(config),
        "optimizer": cfg.optim.name,
        "suggested_lr": result.suggested_lr,
        "steps": len(result.lrs),
        "stopped_early": result.stopped_early,
        "min_loss_lr": result.lrs[min(range(len(result.lrs)), key=lambda i: result.smoothed[i])]
        if result.lrs
        else None,
        "plot": str(plot),
    }


def cmd_lr_find(args: argparse.Namespace) -> int:
    from trainlab.cli import console, emit_json

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
    from trainlab.cli import add_common

    p = sub.add_parser("lr-find", help="learning-rate range test: plot loss vs lr, suggest an lr")
    p.add_argument("config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--steps", type=int, default=200, help="minibatch steps (default 200)")
    p.add_argument("--start-lr", type=float, default=1e-7)
    p.add_argument("--end-lr", type=float, default=10.0)
    p.add_argument("--out", help="plot file (default runs/lr-find/<config stem>.png)")
    add_common(p)
    p.set_defaults(func=cmd_lr_find)
