"""Transfer learning (CS231n lecture 7, "what if you don't have enough data?").

Take a network trained on a large data set, replace its last layer (`fc`) with a fresh one for the
new data's classes, and then
- `linear`: freeze everything else and train the head only (small data, similar to the old);
- `finetune`: also train the last N blocks, with the learning rate times `lr_mult` (0.1: the
  pretrained weights are already good and a large step would wreck them); the head keeps the
  full learning rate. `unfreeze="all"` trains every block and the stem: the whole network.

A block is one entry of `Net.blocks`: one hidden layer of the MLP, one conv stage of the CNN, one
residual block of the ResNet (`list_blocks` shows them). Inputs are normalized with the pretrained
run's statistics by default, as with any pretrained network: its first layer expects inputs on
that scale. Frozen batch-norm layers run in evaluation mode while the rest trains: they normalize
with their running statistics and never update them (keras-team/keras#9965: a frozen BN layer in
training mode normalizes with batch statistics, so the head learns on features that evaluation
never produces).

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

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.config import ExperimentConfig, read_yaml, validate
from trainlab.data import Normalizer, Splits, prepare
from trainlab.errors import UserError
from trainlab.nn.models import Net, build_model
from trainlab.train.loop import Callback, Result, as_config, train
from trainlab.train.run import Run, load_run
from trainlab.train.rundir import load_checkpoint

MODES = ("linear", "finetune")
NORMALIZE = ("pretrained", "new")
DEFAULT_LR_MULT = 0.1
# The 2x2 advice needs "little" vs "quite a lot of" data. The command can only count: below this
# many training examples in the rarest class, fine-tuning even one block (thousands of weights per
# class example) overfits, and a linear head (features x classes weights) is what the data can fit.
LITTLE_DATA_PER_CLASS = 100
SCALE_WARNING = 3.0  # note when the new inputs' std differs from the pretraining data's by this
SOLVERS = ("lbfgs", "optim")
# L2 strengths tried by the lbfgs solver, times the mean square of the training features: with
# features scaled by s the same classifier has weights / s, so the equivalent l2 scales by s^2.
L2_GRID = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 1e-2, 1e-1)
# One epoch = one full-batch L-BFGS solve of up to 500 iterations (it stops when converged): the
# run keeps the converged head, the very fit the l2 search scored (several shorter epochs would
# let "best validation epoch" keep an early, unconverged iterate that ties on accuracy).
LBFGS_EPOCHS, LBFGS_ITERS = 1, 500
# Converged when no gradient entry exceeds this: the last digits of the loss past it change no
# prediction (measured on mnist5k digits 5-9: the same accuracies as 1e-7, about 40% fewer steps).
LBFGS_TOLERANCE_GRAD = 1e-5
ENCODE_BATCH = 512


# ------------------------------------------------------------------------------ pretrained run
@dataclass
class Pretrained:
    """A trained run's network (best weights), the input shape and statistics it was trained on."""

    run: Run
    model: Net
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
            f"--from: {p / 'best.pt'} is not a trainlab checkpoint (no {', '.join(missing)})"
        )
    shape, classes = tuple(int(d) for d in ckpt["input_shape"]), int(ckpt["num_classes"])
    try:
        model = build_model(config.model, shape, classes)
        model.load_state_dict(ckpt["model"])
        normalizer = Normalizer.from_state(ckpt["normalizer"])
    except (RuntimeError, KeyError, TypeError, UserError) as err:
        raise UserError(
            f"--from: {p / 'best.pt'} does not fit the model in its config.yaml "
            f"({str(err).splitlines()[0]})"
        ) from None
    return Pretrained(run, model.eval(), shape, classes, normalizer)


def load_checkpoint_for(path: Path) -> dict[str, Any]:
    """The run's best.pt; torch's unpickling errors run to many lines: the first one is kept."""
    try:
        return load_checkpoint(path / "best.pt")
    except UserError as err:
        why = str(err).splitlines()[0].removeprefix("run: ")
        if not (path / "best.pt").exists():
            why += " (the run saved no weights: did it finish an epoch?)"
        elif not why.endswith(")"):
            why += ")"
        raise UserError(f"--from: {why}") from None


# ------------------------------------------------------------------------------------ blocks
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


def list_blocks(pre: Pretrained) -> list[dict[str, Any]]:
    """The stem, the blocks and the head of a pretrained network: layers, parameters, the shape of
    what each produces for one example, and the smallest `--unfreeze` that trains it."""
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


# -------------------------------------------------------------------------------- freezing
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


# ------------------------------------------------------------------------------------- advice
def examples_per_class(y: torch.Tensor) -> int:
    """Training examples of the rarest class present (what limits what can be learned)."""
    counts = torch.bincount(y.cpu())
    return int(counts[counts > 0].min()) if len(counts) else 0


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


# ------------------------------------------------------------------------- cached features
class HeadOnFeatures(Net):
    """The pretrained network trained on its own cached features: `forward` takes what
    `Net.features` produced and applies the head (and the network's dropout, unless
    `dropout=False`). It holds the very same modules, so its state dict is the whole network's:
    the run's best.pt and last.pt load into an ordinary `Net` (`trainlab eval`, `ensemble`)."""

    def __init__(self, net: Net, dropout: bool = True) -> None:
        nn.Module.__init__(self)
        self.stem, self.blocks, self.pool = net.stem, net.blocks, net.pool
        self.dropout, self.fc = net.dropout, net.fc
        self.use_dropout = dropout

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(f) if self.use_dropout else f)


@dataclass
class FeatureSplits(Splits):
    """Splits whose x are the frozen body's features; the run still records the shape of the
    real inputs (and their normalizer), which is what the saved network takes."""

    inputs_shape: tuple[int, ...] = ()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.inputs_shape


@torch.no_grad()
def encode(model: Net, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`model.features(x)` in evaluation mode, in batches (the frozen body is deterministic)."""
    model.eval().to(device)
    parts = [
        model.features(x[i : i + ENCODE_BATCH].to(device)).cpu()
        for i in range(0, len(x), ENCODE_BATCH)
    ]
    return torch.cat(parts) if parts else torch.zeros((0, model.fc.in_features))


def cache_features(model: Net, splits: Splits, device: torch.device) -> FeatureSplits:
    f = {k: encode(model, getattr(splits, f"x_{k}"), device) for k in ("train", "val", "test")}
    return FeatureSplits(
        f["train"],
        splits.y_train,
        f["val"],
        splits.y_val,
        f["test"],
        splits.y_test,
        splits.kind,
        splits.num_classes,
        splits.normalizer,
        inputs_shape=tuple(splits.input_shape),
    )


def fit_head_lbfgs(fc: nn.Linear, f: torch.Tensor, y: torch.Tensor, cfg: ExperimentConfig) -> None:
    """Minimize cross-entropy + l2/2 |W|^2 (the config's train.l2, no_decay and label smoothing:
    the loss the Trainer computes) over `fc` with the config's L-BFGS, one step per epoch."""
    from trainlab.optim import create
    from trainlab.train.build import WeightPenalty

    holder = nn.ModuleDict({"fc": fc})
    penalty = WeightPenalty(holder, cfg.train)
    opt = create("lbfgs", list(fc.parameters()), **cfg.optim.kwargs())

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(fc(f), y, label_smoothing=cfg.train.label_smoothing)
        loss = loss + penalty() if penalty.active else loss
        loss.backward()
        return loss

    for _ in range(cfg.train.epochs):
        opt.step(closure)


def lbfgs_config(cfg: ExperimentConfig, l2: float) -> ExperimentConfig:
    """The config the lbfgs solver trains with (and the run records): full-batch L-BFGS with a
    strong-Wolfe line search, a constant schedule, the chosen l2; data, model, seed as given."""
    d = cfg.model_dump(mode="json")
    d["optim"] = {
        "name": "lbfgs",
        "max_iter": LBFGS_ITERS,
        "line_search_fn": "strong_wolfe",
        "tolerance_grad": LBFGS_TOLERANCE_GRAD,
    }
    d["schedule"] = {"name": "constant"}
    d["train"] = {**d["train"], "epochs": LBFGS_EPOCHS, "l2": l2, "l1": 0.0}
    return validate(d)


def choose_l2(
    model: Net, feats: FeatureSplits, cfg: ExperimentConfig
) -> tuple[float, dict[str, float]]:
    """Fit the head for each l2 of the grid (from the same fresh head) and keep the one with the
    best validation accuracy (ties: the lower validation loss). Returns (l2, {l2: val acc})."""
    import copy

    from trainlab.train.evaluate import evaluate

    scale = float(feats.x_train.pow(2).mean()) or 1.0
    scores: dict[float, tuple[float, float]] = {}
    for rel in L2_GRID:
        l2 = float(f"{rel * scale:.3g}")
        fc = copy.deepcopy(model.fc)
        fit_head_lbfgs(fc, feats.x_train, feats.y_train, lbfgs_config(cfg, l2))
        loss, acc = evaluate(fc, feats.x_val, feats.y_val)
        scores[l2] = (acc, -loss if loss == loss else float("-inf"))
    best = max(scores, key=lambda k: scores[k])
    return best, {f"{k:g}": v[0] for k, v in scores.items()}


def resolve_solver(solver: str | None, cfg: ExperimentConfig) -> tuple[str, bool, str | None]:
    """(solver, whether features can be cached, a note for the user) for linear mode."""
    if solver is not None and solver not in SOLVERS:
        raise UserError(f"--solver: must be one of {', '.join(SOLVERS)}, got {solver!r}")
    changing = [
        f
        for f, on in (
            ("data.augment", bool(cfg.data.augment)),
            ("train.tta", cfg.train.tta != "none"),
        )
        if on
    ]
    averaging = [
        f
        for f, on in (
            ("train.ema", cfg.train.ema is not None),
            ("train.snapshots", bool(cfg.train.snapshots)),
        )
        if on
    ]
    if solver == "lbfgs" and (changing or averaging):
        why = (
            f"{changing[0]} changes the inputs, so their features cannot be cached"
            if changing
            else f"{averaging[0]} averages minibatch iterates"
        )
        raise UserError(
            f"--solver: lbfgs fits the head on cached features in one "
            f"deterministic problem, and {why}; use --solver optim or unset it"
        )
    if solver is None and (changing or averaging):
        what = (
            "the head trains through the frozen body with the config's optimizer"
            if changing
            else "the head trains with the config's optimizer"
        )
        return (
            "optim",
            not changing,
            (
                f"solver: {(changing or averaging)[0]} is set, so {what} "
                "(--solver optim) instead of L-BFGS on cached features"
            ),
        )
    return solver or "lbfgs", not changing, None


# --------------------------------------------------------------------------------- the setup
@dataclass
class TransferSetup:
    """Everything `train` needs, checked before anything is written."""

    config: ExperimentConfig
    splits: Splits
    model: Net
    lr_mult: dict[str, float] | None
    info: dict[str, Any]  # mode, unfrozen_blocks, from, hint, ... (added to the result)
    settings: dict[str, Any] = field(default_factory=dict)  # what --resume must repeat


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
) -> TransferSetup:
    """Load the pretrained run and the new data, check they fit, build the model to train.

    Linear mode (see the module docstring) caches the frozen body's features when it can: the
    setup's splits then hold features and its model is a `HeadOnFeatures`; with the lbfgs solver
    its config is `lbfgs_config` with the l2 chosen on validation."""
    if mode not in MODES:
        raise UserError(f"--mode: must be one of {', '.join(MODES)}, got {mode!r}")
    if normalize not in NORMALIZE:
        raise UserError(f"--normalize: must be one of {', '.join(NORMALIZE)}, got {normalize!r}")
    if mode == "linear" and unfreeze is not None:
        raise UserError("--unfreeze: only with --mode finetune (linear trains the head only)")
    if mode == "linear" and lr_mult is not None:
        raise UserError("--lr-mult: only with --mode finetune (linear trains the head only)")
    if mode != "linear" and solver is not None:
        raise UserError(
            "--solver: only with --mode linear (finetune trains with the config's optimizer)"
        )
    if lr_mult is not None and not 0 < lr_mult <= 10:
        raise UserError(f"--lr-mult: must be in (0, 10], got {lr_mult}")
    pre = load_pretrained(source)
    cfg = as_config(config, overrides)
    notes = []
    if _user_set_model(config, overrides):
        notes.append(
            f"model: taken from the pretrained run ({pre.config.model.kind}, width "
            f"{pre.config.model.width}, depth {pre.config.model.depth}); the config's "
            "model settings are not used"
        )
    # the network is the pretrained one: its config is what the run directory records
    cfg = validate(
        {**cfg.model_dump(mode="json"), "model": pre.config.model.model_dump(mode="json")}
    )
    # linear mode: how the head is fitted (checked before any data is loaded)
    name, cached, note = resolve_solver(solver, cfg) if mode == "linear" else (None, False, None)
    notes += [note] if note else []
    k = len(pre.model.blocks)
    n_unfrozen, whole = (0, False) if mode == "linear" else parse_unfreeze(unfreeze, k)
    mult = None if mode == "linear" else (DEFAULT_LR_MULT if lr_mult is None else lr_mult)
    from trainlab.optim import FULL_BATCH

    if mode == "finetune" and cfg.optim.name in FULL_BATCH and mult != 1.0 and n_unfrozen:
        raise UserError(
            f"--lr-mult: {cfg.optim.name} takes one step over all parameters at once "
            "(no param groups); use a minibatch optimizer or --lr-mult 1"
        )
    splits = prepare(cfg.data)
    check_input_shape(splits.input_shape, pre.input_shape, splits.kind)
    ratio = float((splits.normalizer.std / pre.normalizer.std).mean())
    if normalize == "pretrained":
        if not (1 / SCALE_WARNING <= ratio <= SCALE_WARNING):
            notes.append(
                f"normalize: the new inputs spread {ratio:.3g}x as wide as the "
                "pretraining data; with the pretrained statistics they reach the network "
                "off-scale: rescale them or use --normalize new"
            )
        splits = splits.renormalized(pre.normalizer)
    model = new_head(pre.model, splits.num_classes, cfg.train.seed)
    trainable = freeze(model, n_unfrozen, stem=whole)
    lr_map = None if mult is None else {f"{name}.": mult for name in trainable if name != "fc"}
    head: dict[str, Any] = {}
    if mode == "linear":
        import time

        from trainlab.train.build import pick_device

        head = {"solver": name, "cached_features": cached}
        if cached:
            start = time.perf_counter()
            splits = cache_features(model, splits, pick_device(cfg.train.device))
            head["features_seconds"] = round(time.perf_counter() - start, 3)
            model = HeadOnFeatures(model, dropout=name != "lbfgs")
        if name == "lbfgs":
            start = time.perf_counter()
            l2, sweep = choose_l2(model, splits, cfg)
            cfg = lbfgs_config(cfg, l2)
            head.update(
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
        "normalize": normalize,
        "solver": head.get("solver"),
    }
    info = {
        "mode": mode,
        "unfrozen_blocks": n_unfrozen,
        "blocks": k,
        "from": str(source),
        "trainable": trainable,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "lr_mult": mult,
        "normalize": normalize,
        "hint": hint(examples_per_class(splits.y_train)),
        "notes": notes,
        **head,
    }
    return TransferSetup(cfg, splits, model, lr_map, info, settings)


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
    last = Path(out) / "last.pt"
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
) -> Result:
    """Transfer the network of the run in `source` to the data of `config` and train it (the
    Python API of `trainlab transfer`); the result carries mode, unfrozen_blocks, from, hint."""
    from trainlab.train.rundir import default_run_dir

    setup = setup_transfer(
        source,
        config,
        mode=mode,
        unfreeze=unfreeze,
        lr_mult=lr_mult,
        normalize=normalize,
        overrides=overrides,
        solver=solver,
    )
    if out is None:
        out = default_run_dir(config if isinstance(config, (str, Path)) else None)
    if resume:
        check_resume(out, setup)
    return train(
        setup.config,
        out=out,
        resume=resume,
        callbacks=[*callbacks, TransferRecord(setup)],
        splits=setup.splits,
        model=setup.model,
        lr_mult=setup.lr_mult,
        curves=curves,
    )
