"""Transfer learning, step 2: model surgery on the pretrained network: a new head for the new
classes, and freezing all but the last blocks (frozen batch norm stays in evaluation mode). A
plugin model's blocks are its top-level children and its head its last nn.Linear (or --head)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainlab.errors import UserError
from trainlab.experiments.transfer.options import DEFAULT_UNFREEZE
from trainlab.nn.models import Net


def parse_unfreeze(value: int | str | None, n_blocks: int) -> tuple[int, bool]:
    """(number of last blocks to train, whether the stem trains too) from `--unfreeze N|all`
    as TransferOptions checked it (a whole number >= 0, "all" or None: the default)."""
    if value is None:
        return DEFAULT_UNFREEZE, False
    if value == "all":
        return n_blocks, True
    n = int(value)
    if n > n_blocks:
        raise UserError(
            f"--unfreeze: {n} is more than the {n_blocks} blocks of the pretrained "
            "network (trainlab transfer --from RUN_DIR --list-blocks shows them); use "
            f"0..{n_blocks} or all"
        )
    return n, False


def _stay_in_eval(module: nn.Module, args: Any) -> None:
    """Forward pre-hook of a frozen batch-norm layer: whatever model.train() said, normalize with
    the running statistics and leave them as they are."""
    module.training = False


def is_plugin_model(model: nn.Module) -> bool:
    """A model of the user's own (a plugin), not trainlab's `Net`: its parts are its top-level
    children, its head the last nn.Linear (or the module `--head` names)."""
    return not isinstance(model, Net)


def blocks_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """What `--unfreeze N` counts from the end: `Net.blocks`, or a plugin model's top-level
    children."""
    if is_plugin_model(model):
        return list(model.named_children())
    return [(f"blocks.{i}", b) for i, b in enumerate(model.blocks)]


def head_name(model: nn.Module, named: str | None = None) -> str:
    """The module the new head replaces: `named` (--head, a dotted name from named_modules()),
    `fc` of a trainlab Net, or the last nn.Linear of a plugin model."""
    if named is None:
        if not is_plugin_model(model):
            return "fc"
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise UserError(
                f"--head: the pretrained {type(model).__name__} has no nn.Linear to replace; "
                "name the layer that gives the logits with --head NAME (--list-blocks shows "
                "the modules)"
            )
        return linears[-1]
    modules = dict(model.named_modules())
    if named not in modules or not named:
        some = ", ".join([n for n in modules if n][:8])
        raise UserError(f"--head: the pretrained model has no module {named!r} (it has {some})")
    if not is_plugin_model(model) and named != "fc":
        raise UserError(f"--head: a trainlab model's head is fc, got {named!r}")
    if not isinstance(modules[named], nn.Linear):
        raise UserError(
            f"--head: {named} is a {type(modules[named]).__name__}, not an nn.Linear; name the "
            "linear layer that gives the logits"
        )
    return named


def freeze(model: nn.Module, unfreeze: int, stem: bool = False, head: str = "fc") -> list[str]:
    """Freeze all but the head, the last `unfreeze` blocks and (if `stem`) the stem (of a plugin
    model: all but the head and its last `unfreeze` top-level children; `stem` trains its own
    parameters too).

    Frozen parameters get requires_grad=False: no gradient, no optimizer state, no weight decay,
    so they stay bit-identical. Frozen batch-norm layers are put in eval mode and kept there by a
    forward pre-hook (Trainer calls model.train() every epoch). Returns the trainable parts.
    """
    blocks = blocks_of(model)
    k = len(blocks)
    parts = blocks if is_plugin_model(model) else [("stem", model.stem), *blocks]
    trainable = [name for name, _ in blocks[k - unfreeze :]] if unfreeze else []
    trainable += ["stem"] if stem and not is_plugin_model(model) else []
    head_params = {id(p) for p in model.get_submodule(head).parameters()}
    for name, part in parts:
        if name in trainable:
            continue
        for p in part.parameters():
            if id(p) not in head_params:
                p.requires_grad_(False)
        for m in part.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
                m.register_forward_pre_hook(_stay_in_eval)
    if is_plugin_model(model) and not stem:  # the model's own parameters, outside its children
        for p in model.parameters(recurse=False):
            p.requires_grad_(False)
    if not is_plugin_model(model):
        trainable.sort(key=lambda n: -1 if n == "stem" else int(n.split(".")[1]))
    inside = any(head == part or head.startswith(f"{part}.") for part in trainable)
    return trainable + ([] if inside else [head])


def new_head(model: nn.Module, num_classes: int, seed: int, head: str = "fc") -> nn.Module:
    """Replace the head (an nn.Linear) with a freshly initialized one for `num_classes`
    (seeded)."""
    old = model.get_submodule(head)
    torch.manual_seed(seed)
    model.set_submodule(head, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))
    return model
