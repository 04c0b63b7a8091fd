"""Transfer learning (CS231n lecture 7, "what if you don't have enough data?").

Take a network trained on a large data set, replace its last layer (`fc`) with a fresh one for the
new data's classes, and then
- `linear`: freeze everything else and train the head only (small data, similar to the old);
- `finetune`: also train the last N blocks, with the learning rate times `lr_mult` (0.1: the
  pretrained weights are already good and a large step would wreck them); the head keeps the
  full learning rate. `unfreeze="all"` trains every block and the stem: the whole network.

A block is one entry of `Net.blocks`: one hidden layer of the MLP, one conv stage of the CNN, one
residual block of the ResNet (`list_blocks` shows them). A plugin model's blocks are its
top-level children and its head is its last nn.Linear (or the module `head` names). Inputs are
normalized with the pretrained run's statistics by default, as with any pretrained network: its
first layer expects inputs on that scale. Frozen batch-norm layers run in evaluation mode while
the rest trains: they normalize with their running statistics and never update them
(keras-team/keras#9965: a frozen BN layer in training mode normalizes with batch statistics, so
the head learns on features that evaluation never produces).

Linear mode fits the head on cached features. The frozen body runs in evaluation mode, so it is
a fixed function: its features (after global average pooling) are computed once for the
train/val/test splits and the head trains on them, each epoch costing a matrix product instead of
a pass through the network. On those features the head is multinomial logistic regression, a
convex problem, and the default solver treats it as one (the lecture: "L-BFGS works well in
full-batch, deterministic mode"): full-batch L-BFGS with a strong-Wolfe line search, and an L2
penalty picked on the validation split from a grid scaled by the features' mean square (so the
grid does not depend on the features' scale). Why not the config's Adam: ReLU + average-pooled
features are all positive (mean larger than their spread), so the problem is badly conditioned
along the mean direction; Adam's per-coordinate steps move every logit the same way (a large lr
overshoots at once, a small one crawls) and the example's few hundred steps stop far from the
optimum. `solver="optim"` keeps the config's optimizer, epochs and batches on the cached features.
Data augmentation or test-time augmentation make cached features invalid (the inputs change every
epoch): then the head trains through the frozen body with the config's optimizer, as before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from trainlab.config import ExperimentConfig, read_yaml, validate
from trainlab.data import Splits, prepare
from trainlab.engine.build import pick_device
from trainlab.engine.checkpoints import load_checkpoint
from trainlab.engine.state import Result
from trainlab.engine.trainer import Callback
from trainlab.errors import UserError
from trainlab.experiments.single import as_config, train_single
from trainlab.experiments.transfer.head import (
    HeadOnFeatures,
    PluginHeadOnFeatures,
    cache_features,
    choose_l2,
    head_gives_logits,
    lbfgs_config,
    resolve_solver,
)
from trainlab.experiments.transfer.options import TransferOptions
from trainlab.experiments.transfer.pretrained import load_pretrained
from trainlab.experiments.transfer.surgery import (
    blocks_of,
    freeze,
    head_name,
    is_plugin_model,
    new_head,
    parse_unfreeze,
)
from trainlab.nn.plugins import check_output
from trainlab.optim import FULL_BATCH
from trainlab.rundir import RunDir, config_dirs, default_run_dir

# The 2x2 advice needs "little" vs "quite a lot of" data. The command can only count: below this
# many training examples in the rarest class, fine-tuning even one block (thousands of weights per
# class example) overfits, and a linear head (features x classes weights) is what the data can fit.
LITTLE_DATA_PER_CLASS = 100


SCALE_WARNING = 3.0  # note when the new inputs' std differs from the pretraining data's by this


def hint(per_class: int, threshold: int = LITTLE_DATA_PER_CLASS) -> dict[str, Any]:
    """The lecture's 2x2 table for the row the data size picks (similarity is the user's call):

                    very similar data            very different data
    very little     linear classifier on top     in trouble: linear classifiers from
                                                 different stages
    quite a lot     fine-tune a few layers       fine-tune a larger number of layers
    """
    little = per_class < threshold
    if little:
        similar = "train a linear classifier on the top layer: --mode linear"
        different = (
            "the hard corner: try --mode linear, then --mode finetune --unfreeze 1 with "
            "a small --lr-mult (the lecture: linear classifiers on features of "
            "different stages); more data helps most"
        )
    else:
        similar = "fine-tune a few layers: --mode finetune --unfreeze 1 (or 2)"
        different = "fine-tune a larger number of layers: --mode finetune --unfreeze all"
    size = "very little" if little else "quite a lot of"
    return {
        "examples_per_class": per_class,
        "threshold": threshold,
        "little_data": little,
        "if_similar": similar,
        "if_different": different,
        "message": (
            f"{per_class} training examples in the rarest class is {size} data "
            f"(threshold {threshold} per class). If the new data is similar to the "
            f"pretraining data, {similar}; if it is very different, {different}."
        ),
    }


@dataclass
class TransferSetup:
    """Everything `train` needs, checked before anything is written."""

    config: ExperimentConfig
    splits: Splits
    model: nn.Module
    lr_mult: dict[str, float] | None
    info: dict[str, Any]  # mode, unfrozen_blocks, from, hint, ... (added to the result)
    settings: dict[str, Any] = field(default_factory=dict)  # what --resume must repeat
    search_dirs: tuple[str, ...] = ()  # where plugins are looked up (recorded in plugins.json)


def _user_set_model(config: Any, overrides: Sequence[str]) -> bool:
    if any(o.split("=", 1)[0].strip().startswith("model.") for o in overrides):
        return True
    if isinstance(config, (str, Path)):
        return "model" in read_yaml(config)
    return isinstance(config, dict) and "model" in config


def check_input_shape(new: tuple[int, ...], old: tuple[int, ...], kind: str) -> None:
    if tuple(new) == tuple(old):
        return
    if kind == "image" and len(new) == len(old) == 3 and new[0] == old[0]:
        raise UserError(
            f"data.resize: the new images are {new[1]}x{new[2]}, the pretrained "
            f"network was trained on {old[1]}x{old[2]}; set data.resize: "
            f"[{old[1]}, {old[2]}]"
        )
    if len(new) == len(old) and len(new) > 1 and new[0] != old[0]:
        raise UserError(
            f"data: the new inputs have {new[0]} channels, the pretrained network takes {old[0]}"
        )
    raise UserError(
        f"data: the new inputs have shape {tuple(new)}, the pretrained network takes {tuple(old)}"
    )


def setup_transfer(
    source: str | Path,
    config: ExperimentConfig | dict | str | Path,
    *,
    mode: str = "linear",
    unfreeze: int | str | None = None,
    lr_mult: float | None = None,
    normalize: str = "pretrained",
    overrides: Sequence[str] = (),
    solver: str | None = None,
    head: str | None = None,
) -> TransferSetup:
    """Load the pretrained run and the new data, check they fit, build the model to train (the
    keywords are TransferOptions' fields, checked there; see `build_transfer`)."""
    options = TransferOptions.of(locals())
    return build_transfer(options, config)


def build_transfer(
    options: TransferOptions, config: ExperimentConfig | dict | str | Path
) -> TransferSetup:
    """What `setup_transfer` does, from checked options.

    Linear mode (see the module docstring) caches the frozen body's features when it can: the
    setup's splits then hold features and its model is a `HeadOnFeatures`; with the lbfgs solver
    its config is `lbfgs_config` with the l2 chosen on validation. A plugin model's head (its
    last nn.Linear, or `head`) trains through the frozen body with the config's optimizer."""
    source, mode, solver = options.source, options.mode, options.solver
    pre = load_pretrained(source)
    plugin = is_plugin_model(pre.model)
    head = head_name(pre.model, options.head)
    cfg = as_config(config, options.overrides)
    notes = []
    if _user_set_model(config, options.overrides):
        described = (
            f"{pre.config.model.kind}, args {pre.config.model.args}"
            if plugin
            else f"{pre.config.model.kind}, width {pre.config.model.width}, depth "
            f"{pre.config.model.depth}"
        )
        notes.append(
            f"model: taken from the pretrained run ({described}); the config's "
            "model settings are not used"
        )
    # the network is the pretrained one: its config is what the run directory records
    cfg = validate(
        {**cfg.model_dump(mode="json"), "model": pre.config.model.model_dump(mode="json")}
    )
    # linear mode: how the head is fitted (checked before any data is loaded)
    name, cached, note = resolve_solver(solver, cfg) if mode == "linear" else (None, False, None)
    notes += [note] if note else []
    if plugin and cached and not head_gives_logits(pre.model, head, pre.input_shape):
        if solver == "lbfgs":
            raise UserError(
                f"--solver: lbfgs fits the head on cached features, and this model's logits are "
                f"not the output of its head {head} unchanged; use --solver optim (or name the "
                "last layer with --head)"
            )
        name, cached = "optim", False
        notes.append(
            f"solver: the model's logits are not the output of its head {head}, so the head "
            "trains through the frozen body with the config's optimizer"
        )
    k = len(blocks_of(pre.model))
    n_unfrozen, whole = (0, False) if mode == "linear" else parse_unfreeze(options.unfreeze, k)
    mult = options.finetune_lr_mult
    if mode == "finetune" and cfg.optim.name in FULL_BATCH and mult != 1.0 and n_unfrozen:
        raise UserError(
            f"--lr-mult: {cfg.optim.name} takes one step over all parameters at once "
            "(no param groups); use a minibatch optimizer or --lr-mult 1"
        )
    dirs = tuple(
        dict.fromkeys(
            [
                *pre.run.search_dirs,
                *(config_dirs(config) if isinstance(config, (str, Path)) else ()),
            ]
        )
    )
    splits = prepare(cfg.data, search_dirs=dirs)
    check_input_shape(splits.input_shape, pre.input_shape, splits.kind)
    ratio = float((splits.normalizer.std / pre.normalizer.std).mean())
    if options.normalize == "pretrained":
        if not (1 / SCALE_WARNING <= ratio <= SCALE_WARNING):
            notes.append(
                f"normalize: the new inputs spread {ratio:.3g}x as wide as the "
                "pretraining data; with the pretrained statistics they reach the network "
                "off-scale: rescale them or use --normalize new"
            )
        splits = splits.renormalized(pre.normalizer)
    model = new_head(pre.model, splits.num_classes, cfg.train.seed, head)
    if plugin:  # the new head must give the logits
        what = f"{pre.config.model.kind} with a new head {head}"
        check_output(model, what, pre.input_shape, splits.num_classes, "--head")
    trainable = freeze(model, n_unfrozen, stem=whole, head=head)
    lr_map = None
    if mult is not None:  # the last matching prefix wins: the head keeps the full lr
        lr_map = {f"{part}.": mult for part in trainable if part != head} | {f"{head}.": 1.0}
    head_info: dict[str, Any] = {}
    if mode == "linear":
        head_info = {"solver": name, "cached_features": cached}
        if cached:
            start = time.perf_counter()
            splits = cache_features(model, splits, pick_device(cfg.train.device), head)
            head_info["features_seconds"] = round(time.perf_counter() - start, 3)
            if plugin:  # the head's input in eval mode: the body's dropout is off
                model = PluginHeadOnFeatures(model, head)
            else:
                model = HeadOnFeatures(model, dropout=name != "lbfgs")
        if name == "lbfgs":
            start = time.perf_counter()
            l2, sweep = choose_l2(model, splits, cfg, head)
            cfg = lbfgs_config(cfg, l2)
            head_info.update(
                {
                    "l2": l2,
                    "l2_search": sweep,
                    "l2_search_seconds": round(time.perf_counter() - start, 3),
                }
            )
    settings = {
        "from": str(Path(source).resolve()),
        "mode": mode,
        "unfrozen_blocks": n_unfrozen,
        "stem": whole,
        "lr_mult": mult,
        "normalize": options.normalize,
        "solver": head_info.get("solver"),
        **({"head": head} if plugin else {}),
    }
    info = {
        "mode": mode,
        "unfrozen_blocks": n_unfrozen,
        "blocks": k,
        "from": str(source),
        "trainable": trainable,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "lr_mult": mult,
        "normalize": options.normalize,
        "hint": hint(splits.rarest_class_count()),
        "notes": notes,
        **({"head": head} if plugin else {}),
        **head_info,
    }
    return TransferSetup(cfg, splits, model, lr_map, info, settings, dirs)


class TransferRecord(Callback):
    """Adds the transfer's settings to the result (result.json, --json) and makes --resume
    refuse different settings (they are saved in last.pt)."""

    def __init__(self, setup: TransferSetup) -> None:
        self.setup = setup

    def on_train_end(self, trainer: Any, result: Result) -> None:
        result.extra.update(self.setup.info)

    def state_dict(self) -> dict[str, Any]:
        return {"transfer": dict(self.setup.settings)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("transfer")
        if saved != self.setup.settings:
            raise UserError(
                "--resume: this run was started with other transfer settings "
                f"({saved}); resume with the same --from, --mode, --unfreeze, "
                "--lr-mult and --normalize"
            )


def check_resume(out: str | Path, setup: TransferSetup) -> None:
    """Before resuming: the run in `out` must have been a transfer with the same settings (its
    optimizer has the param groups of those settings, so this is checked before loading it)."""
    last = RunDir(out).last
    if not last.exists():
        return
    saved = [
        s.get("transfer")
        for s in load_checkpoint(last).get("callbacks", [])
        if isinstance(s, dict) and "transfer" in s
    ]
    if not saved:
        raise UserError(f"--resume: {out} is not a transfer run; resume it with trainlab train")
    TransferRecord(setup).load_state_dict({"transfer": saved[0]})


def transfer(
    source: str | Path,
    config: ExperimentConfig | dict | str | Path,
    *,
    mode: str = "linear",
    unfreeze: int | str | None = None,
    lr_mult: float | None = None,
    normalize: str = "pretrained",
    out: str | Path | None = None,
    resume: bool = False,
    overrides: Sequence[str] = (),
    callbacks: Sequence[Callback] = (),
    curves: bool = True,
    solver: str | None = None,
    head: str | None = None,
) -> Result:
    """Transfer the network of the run in `source` to the data of `config` and train it (the
    Python API of `trainlab transfer`); the result carries mode, unfrozen_blocks, from, hint."""
    options = TransferOptions.of(locals())
    setup = build_transfer(options, config)
    if out is None:
        out = default_run_dir(config if isinstance(config, (str, Path)) else None)
    return train_transfer(setup, out=out, resume=resume, callbacks=callbacks, curves=curves)


def train_transfer(
    setup: TransferSetup,
    *,
    out: str | Path,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    curves: bool = True,
) -> Result:
    """Train what `setup_transfer` built into the run directory `out` (with `resume`: only the
    same transfer settings continue)."""
    if resume:
        check_resume(out, setup)
    return train_single(
        setup.config,
        out=out,
        resume=resume,
        callbacks=[*callbacks, TransferRecord(setup)],
        splits=setup.splits,
        model=setup.model,
        lr_mult=setup.lr_mult,
        curves=curves,
        search_dirs=setup.search_dirs,
    )
