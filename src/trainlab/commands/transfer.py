"""`trainlab transfer --from RUN_DIR CONFIG`: a trained network, a new head, the new data.

`--mode linear` trains the new last layer only (by default with L-BFGS on cached features, l2
chosen on validation; `--solver optim` uses the config's optimizer); `--mode finetune` also trains
the last N blocks (`--unfreeze N|all`) with the learning rate times `--lr-mult`. `--list-blocks`
shows the blocks. A plugin model's blocks are its top-level children and its head is its last
nn.Linear, or the module `--head NAME` names.
"""

from __future__ import annotations

import argparse

from trainlab.commands.output import ProgressBar, add_common, console, emit_json, print_result
from trainlab.errors import UserError
from trainlab.experiments.transfer import (
    list_blocks,
    load_pretrained,
    setup_transfer,
    train_transfer,
)
from trainlab.experiments.transfer.surgery import blocks_of, head_name, is_plugin_model
from trainlab.rundir import default_run_dir


def print_blocks(source: str, as_json: bool, head: str | None = None) -> int:
    from rich.table import Table

    pre = load_pretrained(source)
    rows = list_blocks(pre, head)
    blocks = len(blocks_of(pre.model))
    m = pre.config.model
    table = Table(
        title=f"{m.kind} from {source}: input {tuple(pre.input_shape)}, {pre.num_classes} classes",
        title_justify="left",
    )
    for col, justify in (
        ("block", "left"),
        ("layers", "left"),
        ("parameters", "right"),
        ("output", "right"),
        ("trained with --unfreeze", "right"),
    ):
        table.add_column(col, justify=justify)
    for r in rows:
        table.add_row(
            r["name"],
            r["layers"],
            f"{r['parameters']:,}",
            "x".join(str(d) for d in r["output_shape"]) if r["output_shape"] else "-",
            r["unfreeze"],
        )
    c = console(as_json)
    c.print(table)
    plugin = is_plugin_model(pre.model)
    c.print(
        f"{blocks} blocks; --mode linear trains the new head "
        f"({head_name(pre.model, head)}) only, --mode finetune --unfreeze N also the last N "
        f"blocks{' (top-level children)' if plugin else ' (all: the stem too)'}",
        highlight=False,
    )
    if as_json:
        emit_json(
            {
                "from": source,
                "model": m.model_dump(mode="json"),
                "input_shape": list(pre.input_shape),
                "num_classes": pre.num_classes,
                "blocks": blocks,
                "head": head_name(pre.model, head),
                "parts": rows,
            }
        )
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    if args.list_blocks:
        if args.config:
            raise UserError("--list-blocks: shows the pretrained network only; drop CONFIG")
        return print_blocks(args.source, args.json, args.head)
    if not args.config:
        raise UserError(
            "CONFIG: the experiment config of the new data is needed (or --list-blocks)"
        )
    if args.resume and not args.out:
        raise UserError("--resume: give the run directory to continue with --out")
    mode = args.mode or (
        "finetune" if args.unfreeze is not None or args.lr_mult is not None else "linear"
    )
    setup = setup_transfer(
        args.source,
        args.config,
        mode=mode,
        unfreeze=args.unfreeze,
        lr_mult=args.lr_mult,
        normalize=args.normalize,
        overrides=args.set,
        solver=args.solver,
        head=args.head,
    )
    info, c = setup.info, console(args.json)
    what = (
        f"the new head ({info.get('head', 'fc')})"
        if mode == "linear"
        else (
            f"{', '.join(info['trainable'])} "
            f"({info['unfrozen_blocks']} of {info['blocks']} blocks"
            f" at lr x {info['lr_mult']:g}, the head at the full lr)"
        )
    )
    if mode == "linear":
        what += (
            f" with L-BFGS on cached features (l2 {info['l2']:g} chosen on validation)"
            if info["solver"] == "lbfgs"
            else f" with {setup.config.optim.name} "
            f"{'on cached features' if info['cached_features'] else 'through the body'}"
        )
    c.print(
        f"transfer from {args.source} ({mode}): training {what}, "
        f"{info['trainable_parameters']:,} parameters; inputs normalized with the "
        f"{info['normalize']} statistics",
        highlight=False,
    )
    c.print(f"[bold]hint[/] {info['hint']['message']}", highlight=False)
    for note in info["notes"]:
        c.print(f"[bold yellow]note[/] {note}", highlight=False)
    with ProgressBar(setup.config.train.epochs, label=mode) as bar:
        result = train_transfer(
            setup,
            out=args.out or default_run_dir(args.config),
            resume=args.resume,
            callbacks=[bar.callback()],
        )
    print_result(result.to_dict(), args.json, title=f"transfer ({mode})")
    return 0


def add_parser(sub) -> None:  # noqa: ANN001
    p = sub.add_parser(
        "transfer",
        help="transfer a trained network to new data: new head, frozen or fine-tuned blocks",
    )
    p.add_argument(
        "config",
        nargs="?",
        help="experiment config of the new data (YAML); its "
        "model section is replaced by the pretrained one",
    )
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="RUN_DIR",
        help="run directory of the pretrained network (its best.pt)",
    )
    p.add_argument(
        "--mode",
        choices=["linear", "finetune"],
        default=None,
        help="linear: train the new head only (default); finetune: also the last --unfreeze blocks",
    )
    p.add_argument(
        "--unfreeze",
        default=None,
        metavar="N|all",
        help="finetune: how many of the last blocks to train (default 1; all: the whole network)",
    )
    p.add_argument(
        "--lr-mult",
        type=float,
        default=None,
        help="finetune: learning-rate multiplier of the unfrozen blocks (default 0.1)",
    )
    p.add_argument(
        "--solver",
        choices=["lbfgs", "optim"],
        default=None,
        help="linear: how the head is fitted: lbfgs (default) solves the convex "
        "problem on cached features, l2 chosen on validation; optim uses the "
        "config's optimizer, epochs and batch size",
    )
    p.add_argument(
        "--normalize",
        choices=["pretrained", "new"],
        default="pretrained",
        help="normalize inputs with the pretraining data's statistics (default) or "
        "the new training split's",
    )
    p.add_argument(
        "--list-blocks", action="store_true", help="show the pretrained network's blocks and exit"
    )
    p.add_argument(
        "--head",
        default=None,
        metavar="NAME",
        help="plugin models: the nn.Linear replaced by the new head, a dotted module name "
        "(default: the model's last nn.Linear)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field by dotted path (repeatable)",
    )
    p.add_argument("--out", help="run directory (default runs/<config stem>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the transfer run in --out")
    add_common(p)
    p.set_defaults(func=cmd_transfer)
