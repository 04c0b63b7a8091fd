"""Transfer learning, step 1: a trained run's network read back (best weights, input shape and
statistics), and its blocks listed for `--unfreeze`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.config import ExperimentConfig
from trainlab.data import Normalizer
from trainlab.engine.checkpoints import load_checkpoint
from trainlab.engine.run import Run, load_run
from trainlab.errors import UserError
from trainlab.experiments.transfer.surgery import head_name
from trainlab.nn.models import Net, build_model
from trainlab.rundir import RunDir


@dataclass
class Pretrained:
    """A trained run's network (best weights), the input shape and statistics it was trained on."""

    run: Run
    model: nn.Module  # a trainlab Net or the user's plugin model
    input_shape: tuple[int, ...]
    num_classes: int
    normalizer: Normalizer

    @property
    def config(self) -> ExperimentConfig:
        return self.run.config


def load_pretrained(path: str | Path) -> Pretrained:
    """Rebuild a run's network with its best weights; every failure is a `--from:` UserError."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"--from: {p} does not exist (give the run directory of a trained model)")
    try:
        run = load_run(p)
        config = run.config
    except UserError as err:
        raise UserError(f"--from: {str(err).removeprefix('run: ')}") from None
    ckpt = load_checkpoint_for(p)
    missing = [k for k in ("model", "input_shape", "num_classes", "normalizer") if k not in ckpt]
    if missing:
        raise UserError(
            f"--from: {RunDir(p).best} is not a trainlab checkpoint (no {', '.join(missing)})"
        )
    shape, classes = tuple(int(d) for d in ckpt["input_shape"]), int(ckpt["num_classes"])
    try:
        model = build_model(config.model, shape, classes, run.search_dirs)
        model.load_state_dict(ckpt["model"])
        normalizer = Normalizer.from_state(ckpt["normalizer"])
    except UserError as err:
        if str(err).startswith("model.kind:"):  # the plugin cannot be rebuilt: its own line
            raise UserError(f"--from: {p}: {err}") from None
        raise UserError(
            f"--from: {RunDir(p).best} does not fit the model in its config.yaml "
            f"({str(err).splitlines()[0]})"
        ) from None
    except (RuntimeError, KeyError, TypeError) as err:
        raise UserError(
            f"--from: {RunDir(p).best} does not fit the model in its config.yaml "
            f"({str(err).splitlines()[0]})"
        ) from None
    return Pretrained(run, model.eval(), shape, classes, normalizer)


def load_checkpoint_for(path: Path) -> dict[str, Any]:
    """The run's best.pt; torch's unpickling errors run to many lines: the first one is kept."""
    try:
        return load_checkpoint(RunDir(path).best)
    except UserError as err:
        why = str(err).splitlines()[0].removeprefix("run: ")
        if not RunDir(path).best.exists():
            why += " (the run saved no weights: did it finish an epoch?)"
        elif not why.endswith(")"):
            why += ")"
        raise UserError(f"--from: {why}") from None


def _describe(module: nn.Module) -> str:
    """A short text for the layers of a block, e.g. 'MaxPool2d, Conv2d 16->32 k5, BatchNorm2d,
    ReLU'."""
    parts = []
    for m in module.modules():
        if any(True for _ in m.children()) or isinstance(m, (nn.Identity, nn.Flatten)):
            continue
        name = type(m).__name__
        if isinstance(m, nn.Linear):
            name += f" {m.in_features}->{m.out_features}"
        elif isinstance(m, (nn.Conv1d, nn.Conv2d)):
            name += f" {m.in_channels}->{m.out_channels} k{m.kernel_size[0]}"
            if m.stride[0] != 1:
                name += f" s{m.stride[0]}"
        elif isinstance(m, nn.Dropout | nn.Dropout1d | nn.Dropout2d):
            name += f" p={m.p:g}"
        parts.append(name)
    return ", ".join(parts) or "-"


def list_plugin_blocks(pre: Pretrained, head: str | None = None) -> list[dict[str, Any]]:
    """The top-level children of a plugin model (what `--unfreeze N` counts from the end): type,
    layers, parameters and the smallest `--unfreeze` that trains it; the head is marked."""
    replaced = head_name(pre.model, head)
    children = list(pre.model.named_children())
    rows = []
    for i, (name, child) in enumerate(children):
        inside = replaced == name or replaced.startswith(f"{name}.")
        layers = _describe(child)
        if any(True for _ in child.children()) or layers == "-":
            layers = type(child).__name__ + ("" if layers == "-" else f": {layers}")
        rows.append(
            {
                "name": name,
                "index": i,
                "type": type(child).__name__,
                "layers": layers + (f" (head {replaced} replaced)" if inside else ""),
                "parameters": sum(p.numel() for p in child.parameters()),
                "output_shape": None,
                "unfreeze": str(len(children) - i),
            }
        )
    return rows


def list_blocks(pre: Pretrained, head: str | None = None) -> list[dict[str, Any]]:
    """The stem, the blocks and the head of a pretrained network: layers, parameters, the shape of
    what each produces for one example, and the smallest `--unfreeze` that trains it (of a plugin
    model: its top-level children, list_plugin_blocks)."""
    if not isinstance(pre.model, Net):
        return list_plugin_blocks(pre, head)
    model, k = pre.model, len(pre.model.blocks)
    x = torch.zeros((2, *pre.input_shape))
    rows = []

    def count(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    with torch.no_grad():
        x = model.stem(x)
        rows.append(
            {
                "name": "stem",
                "index": None,
                "layers": _describe(model.stem),
                "parameters": count(model.stem),
                "output_shape": list(x.shape[1:]),
                "unfreeze": "all",
            }
        )
        for i, block in enumerate(model.blocks):
            x = block(x)
            rows.append(
                {
                    "name": f"blocks.{i}",
                    "index": i,
                    "layers": _describe(block),
                    "parameters": count(block),
                    "output_shape": list(x.shape[1:]),
                    "unfreeze": str(k - i),
                }
            )
        x = model.pool(x)
    rows.append(
        {
            "name": "fc",
            "index": None,
            "layers": _describe(model.fc) + " (replaced)",
            "parameters": count(model.fc),
            "output_shape": [pre.num_classes],
            "unfreeze": "always trained",
        }
    )
    return rows
