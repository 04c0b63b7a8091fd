"""Transfer learning, linear mode: the head fitted on cached features of the frozen body, as
multinomial logistic regression with full-batch L-BFGS and an L2 strength chosen on validation.

The features are what the head takes: `Net.features` for trainlab's networks; for a plugin
model, the input of its head module, captured by a forward hook, which is valid when the model's
logits are the head's output unchanged (`head_gives_logits` checks it).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.config import ExperimentConfig, validate
from trainlab.data import AnySplits, Splits
from trainlab.data.streaming import Split, TensorSplit, bounded_batch
from trainlab.engine.build import WeightPenalty
from trainlab.engine.evaluate import evaluate
from trainlab.errors import UserError
from trainlab.nn.models import Net
from trainlab.optim import create

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


class PluginHeadOnFeatures(nn.Module):
    """A plugin model trained on cached features: `forward` applies its head (the module named
    `head`) to the head's input. It holds the model's very children, parameters and buffers under
    their names, so its state dict is the model's (best.pt loads into the plugin's model)."""

    def __init__(self, model: nn.Module, head: str) -> None:
        super().__init__()
        for name, child in model.named_children():
            self.add_module(name, child)
        for name, p in model.named_parameters(recurse=False):
            self.register_parameter(name, p)
        for name, b in model.named_buffers(recurse=False):
            self.register_buffer(name, b)
        self._trainlab_head = head

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.get_submodule(self._trainlab_head)(f)


@contextmanager
def _tapped(model: nn.Module, head: str) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """A function x -> the input of `head` when the model runs on x (eval mode, no grad); it
    raises if the model's output is not the head's output unchanged."""
    seen: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        seen["features"], seen["out"] = args[0], out

    handle = model.get_submodule(head).register_forward_hook(hook)

    def features(x: torch.Tensor) -> torch.Tensor:
        seen.clear()
        out = model(x)
        if seen.get("out") is not out:
            raise UserError(f"--head: the model's logits are not the output of {head}")
        return seen["features"]

    try:
        yield features
    finally:
        handle.remove()


@torch.no_grad()
def head_gives_logits(model: nn.Module, head: str, input_shape: tuple[int, ...]) -> bool:
    """Whether the model's logits are the output of `head` unchanged (then the head can be
    fitted on its input, cached): one dry forward pass in eval mode."""
    was_training = model.training
    device = next(model.parameters(), torch.empty(0)).device
    try:
        with _tapped(model.eval(), head) as features:
            features(torch.zeros((2, *input_shape), device=device))
        return True
    except UserError:
        return False
    finally:
        model.train(was_training)


@contextmanager
def _features_of(model: nn.Module, head: str) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    if isinstance(model, Net):
        yield model.features
    else:
        with _tapped(model, head) as features:
            yield features


@dataclass
class FeatureSplits(Splits):
    """Splits whose x are the frozen body's features; the run still records the shape of the
    real inputs (and their normalizer), which is what the saved network takes."""

    inputs_shape: tuple[int, ...] = ()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.inputs_shape


@torch.no_grad()
def encode(
    model: nn.Module, x: torch.Tensor, device: torch.device, head: str = "fc"
) -> torch.Tensor:
    """The head's input for x (`model.features(x)` of a Net) in evaluation mode, in batches (the
    frozen body is deterministic)."""
    model.eval().to(device)
    with _features_of(model, head) as features:
        parts = [
            features(x[i : i + ENCODE_BATCH].to(device)).cpu()
            for i in range(0, len(x), ENCODE_BATCH)
        ]
    width = model.get_submodule(head).in_features
    return torch.cat(parts) if parts else torch.zeros((0, width))


@torch.no_grad()
def encode_split(
    model: nn.Module, split: Split, device: torch.device, head: str = "fc"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, labels) of a split; a streamed one is encoded batch by batch (the features of
    the whole split are kept: they are what the head trains on)."""
    if isinstance(split, TensorSplit):
        return encode(model, split.x, device, head), split.y
    model.eval().to(device)
    batches = split.batches(bounded_batch(ENCODE_BATCH, split.shape))
    with _features_of(model, head) as features:
        parts = [(features(x.to(device)).cpu(), y.cpu()) for x, y in batches]
    if not parts:
        width = model.get_submodule(head).in_features
        return torch.zeros((0, width)), torch.zeros(0, dtype=torch.long)
    return torch.cat([f for f, _ in parts]), torch.cat([y for _, y in parts])


def cache_features(
    model: nn.Module, splits: AnySplits, device: torch.device, head: str = "fc"
) -> FeatureSplits:
    """The train/val/test splits as features of the frozen body (what the head `head` takes)."""
    f = {k: encode_split(model, getattr(splits, k), device, head) for k in ("train", "val", "test")}
    return FeatureSplits(
        *f["train"],
        *f["val"],
        *f["test"],
        splits.kind,
        splits.num_classes,
        splits.normalizer,
        inputs_shape=tuple(splits.input_shape),
    )


def fit_head_lbfgs(fc: nn.Linear, f: torch.Tensor, y: torch.Tensor, cfg: ExperimentConfig) -> None:
    """Minimize cross-entropy + l2/2 |W|^2 (the config's train.l2, no_decay and label smoothing:
    the loss the Trainer computes) over `fc` with the config's L-BFGS, one step per epoch."""
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
    model: nn.Module, feats: FeatureSplits, cfg: ExperimentConfig, head: str = "fc"
) -> tuple[float, dict[str, float]]:
    """Fit the head for each l2 of the grid (from the same fresh head) and keep the one with the
    best validation accuracy (ties: the lower validation loss). Returns (l2, {l2: val acc})."""
    scale = float(feats.x_train.pow(2).mean()) or 1.0
    scores: dict[float, tuple[float, float]] = {}
    for rel in L2_GRID:
        l2 = float(f"{rel * scale:.3g}")
        fc = copy.deepcopy(model.get_submodule(head))
        fit_head_lbfgs(fc, feats.x_train, feats.y_train, lbfgs_config(cfg, l2))
        loss, acc = evaluate(fc, feats.x_val, feats.y_val)
        scores[l2] = (acc, -loss if loss == loss else float("-inf"))
    best = max(scores, key=lambda k: scores[k])
    return best, {f"{k:g}": v[0] for k, v in scores.items()}


def resolve_solver(solver: str | None, cfg: ExperimentConfig) -> tuple[str, bool, str | None]:
    """(solver, whether features can be cached, a note for the user) for linear mode."""
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
