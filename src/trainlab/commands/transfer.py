"""`trainlab transfer --from RUN_DIR CONFIG`: a trained network, a new head, the new data.

`--mode linear` trains the new last layer only (by default with L-BFGS on cached features, l2
chosen on validation; `--solver optim` uses the config's optimizer); `--mode finetune` also trains
the last N blocks (`--unfreeze N|all`) with the learning rate times `--lr-mult`. `--list-blocks`
shows the blocks. A plugin model's blocks are its top-level children and its head is its last
nn.Linear, or the module `--head NAME` names.
"""

from __future__ import annotations

import argparse
from typing import get_origin

from trainlab.commands.output import ProgressBar, add_common, console, emit_json, print_result
from trainlab.errors import UserError
from trainlab.experiments.transfer.options import TransferOptions, choices, flag_of
from trainlab.rundir import default_run_dir


def print_blocks(source: str, as_json: bool, head: str | None = None) -> int:
    from rich.table import Table

    from trainlab.experiments.transfer.pretrained import (  # heavy: torch, when it runs
        list_blocks,
        load_pretrained,
    )
    from trainlab.experiments.transfer.surgery import (  # heavy: torch, when it runs
        blocks_of,
        head_name,
        is_plugin_model,
    )

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
    options = TransferOptions.of(vars(args))
    if options.list_blocks:
        if args.config:
            raise UserError("--list-blocks: shows the pretrained network only; drop CONFIG")
        return print_blocks(options.source, args.json, options.head)
    if not args.config:
        raise UserError(
            "CONFIG: the experiment config of the new data is needed (or --list-blocks)"
        )
    from trainlab.experiments.transfer.api import (  # heavy: torch, when the command runs
        build_transfer,
        train_transfer,
    )

    mode = options.mode
    setup = build_transfer(options, args.config)
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
        f"transfer from {options.source} ({mode}): training {what}, "
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
            out=options.out or default_run_dir(args.config),
            resume=options.resume,
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
    add_flags(p)
    add_common(p)
    p.set_defaults(func=cmd_transfer)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TransferOptions field, with its spelling, help, choices and placeholder;
    argparse leaves an absent flag None, so the model's default applies."""
    for name, field in TransferOptions.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        kwargs: dict = {"dest": name, "help": field.description}
        if field.annotation is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["required"] = field.is_required()
            kwargs["choices"] = choices(name)
            kwargs["metavar"] = extra.get("metavar")
        if get_origin(field.annotation) is list:  # repeatable
            kwargs["action"] = "append"
        parser.add_argument(flag_of(name), **kwargs)
