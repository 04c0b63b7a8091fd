"""Transfer learning, step 2: model surgery on the pretrained network: a new head for the new
classes, and freezing all but the last blocks (frozen batch norm stays in evaluation mode)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainlab.errors import UserError
from trainlab.nn.models import Net


def parse_unfreeze(value: int | str | None, n_blocks: int) -> tuple[int, bool]:
    """(number of last blocks to train, whether the stem trains too) from `--unfreeze N|all`."""
    if value is None:
        return 1, False
    if str(value).strip().lower() == "all":
        return n_blocks, True
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise UserError(
            f"--unfreeze: must be a number of blocks 0..{n_blocks} or all, got {value!r}"
        ) from None
    if n < 0:
        raise UserError(f"--unfreeze: must be a number of blocks 0..{n_blocks} or all, got {n}")
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


def freeze(model: Net, unfreeze: int, stem: bool = False) -> list[str]:
    """Freeze all but the head (`fc`), the last `unfreeze` blocks and (if `stem`) the stem.

    Frozen parameters get requires_grad=False: no gradient, no optimizer state, no weight decay,
    so they stay bit-identical. Frozen batch-norm layers are put in eval mode and kept there by a
    forward pre-hook (Trainer calls model.train() every epoch). Returns the trainable parts.
    """
    k = len(model.blocks)
    parts: list[tuple[str, nn.Module]] = [("stem", model.stem)]
    parts += [(f"blocks.{i}", b) for i, b in enumerate(model.blocks)]
    trainable = [f"blocks.{i}" for i in range(k - unfreeze, k)] + (["stem"] if stem else [])
    for name, part in parts:
        if name in trainable:
            continue
        for p in part.parameters():
            p.requires_grad_(False)
        for m in part.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
                m.register_forward_pre_hook(_stay_in_eval)
    return sorted(trainable, key=lambda n: -1 if n == "stem" else int(n.split(".")[1])) + ["fc"]


def new_head(model: Net, num_classes: int, seed: int) -> Net:
    """Replace `fc` with a freshly initialized linear layer for `num_classes` (seeded)."""
    torch.manual_seed(seed)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model
