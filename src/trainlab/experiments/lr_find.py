"""The learning-rate range test ("learning rate first", in one command): `lr_range_test` on any
model and batches, `run_lr_find` on a config.

Train for a few hundred steps while the learning rate grows exponentially from `start_lr` to
`end_lr`, record the smoothed loss, stop once it explodes, and suggest a learning rate from the
curve. The model's weights (and buffers, and torch's global RNG state) are restored afterwards.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

from trainlab.config import load_config
from trainlab.data import prepare
from trainlab.engine.build import make_optimizer as config_optimizer
from trainlab.errors import UserError
from trainlab.nn.models import build_model
from trainlab.optim import FULL_BATCH
from trainlab.report.lr_find import LRFindResult, plot_lr_find
from trainlab.rundir import check_out_dir, config_dirs
from trainlab.smoothing import DebiasedEMA

SMOOTH_BETA = 0.98  # the smoothing fastai and Lightning use for this curve (memory ~50 steps)
MIN_POINTS = 10  # steps: fewer recorded points give no suggestion
MIN_DROP = 0.05  # fraction: a loss that never fell this far below its start gives no suggestion


def suggest_lr(lrs: list[float], smoothed: list[float]) -> float | None:
    """The lr where the smoothed loss is lowest, divided by 10 (fastai's "lr_min" rule).

    At the minimum the loss is about to blow up, so a tenth of it is fast but safe. We measured
    it against Lightning's steepest-slope rule and fastai's "valley" on digits (MLP; SGD, SGD
    momentum 0.9, Adam; 100/200/400 steps): min/10 moved at most 2x with the number of steps and
    its lr trained to within 0.012 of the best grid lr's accuracy every time, while the steepest
    slope moved up to 20x (it follows noisy local slopes) and valley sat on the flat start
    (0.2-0.9 accuracy).
    None when there are too few points or the loss never fell MIN_DROP below its start.
    """
    points = [(lr, v) for lr, v in zip(lrs, smoothed) if math.isfinite(v)]
    if len(points) < MIN_POINTS:
        return None
    best_lr, best = min(points, key=lambda p: p[1])
    start = max(v for _, v in points[:MIN_POINTS])
    if best > (1.0 - MIN_DROP) * start:
        return None
    return best_lr / 10.0


def _cycle(batches: Iterable[tuple[Tensor, Tensor]]) -> Iterator[tuple[Tensor, Tensor]]:
    """Repeat `batches` forever: re-iterate a list or DataLoader, replay a one-shot iterator."""
    empty = UserError("lr-find batches: the data gave no batch (is the training set empty?)")
    if not isinstance(batches, Iterator):
        while True:
            produced = False
            for batch in batches:
                produced = True
                yield batch
            if not produced:
                raise empty
    cache: list[tuple[Tensor, Tensor]] = []
    for batch in batches:
        cache.append(batch)
        yield batch
    if not cache:
        raise empty
    while True:
        yield from cache


def lr_range_test(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    make_optimizer: Callable[[Iterable[nn.Parameter], float], Optimizer],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 200,
    diverge_factor: float = 4.0,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
) -> LRFindResult:
    """Run the range test on `model` (restored afterwards) and suggest a learning rate.

    lr_k = start_lr * (end_lr / start_lr) ** (k / (steps - 1)) at step k: the optimizer's base lr
    (its `defaults["lr"]`); each param group keeps its multiplier of it. Stops early when the
    loss is NaN/inf or the smoothed loss exceeds `diverge_factor` x the best smoothed loss so far.
    """
    if not (math.isfinite(start_lr) and start_lr > 0):
        raise UserError(f"lr_find.start_lr: must be a finite number > 0, got {start_lr}")
    if not (math.isfinite(end_lr) and end_lr > start_lr):
        raise UserError(
            f"lr_find.end_lr: must be a finite number > start_lr ({start_lr}), got {end_lr}"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < MIN_POINTS:
        raise UserError(f"lr_find.steps: must be an integer >= {MIN_POINTS}, got {steps!r}")
    if not (math.isfinite(diverge_factor) and diverge_factor > 1):
        raise UserError(
            f"lr_find.diverge_factor: must be a finite number > 1, got {diverge_factor}"
        )

    saved_state = copy.deepcopy(model.state_dict())
    was_training = model.training
    parameters = list(model.parameters())
    device = parameters[0].device if parameters else torch.device("cpu")
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    optimizer = make_optimizer(model.parameters(), start_lr)
    # per-group multipliers (fine-tuning's lower backbone lr) relative to the optimizer's base lr;
    # this also holds when make_optimizer ignores the lr it is given
    base_lr = float(optimizer.defaults.get("lr", start_lr)) or start_lr
    relative = [group["lr"] / base_lr for group in optimizer.param_groups]
    growth = (end_lr / start_lr) ** (1.0 / (steps - 1))

    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stopped_early = False
    best = math.inf
    ema = DebiasedEMA(SMOOTH_BETA)
    try:
        with torch.random.fork_rng(devices=cuda_devices):
            model.train()
            data = _cycle(batches)
            for k in range(steps):
                lr = start_lr * growth**k
                for group, ratio in zip(optimizer.param_groups, relative):
                    group["lr"] = lr * ratio
                inputs, targets = next(data)
                inputs, targets = inputs.to(device), targets.to(device)
                loss = loss_fn(model(inputs), targets)
                value = float(loss.item())
                if not math.isfinite(value):
                    stopped_early = True
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                current = ema.update(value)  # the smoothed curve, as trainlab.smoothing.smooth
                lrs.append(lr)
                losses.append(value)
                smoothed.append(current)
                best = min(best, current)
                if current > diverge_factor * best:
                    stopped_early = True
                    break
    finally:
        model.load_state_dict(saved_state)
        model.train(was_training)
    return LRFindResult(lrs, losses, smoothed, suggest_lr(lrs, smoothed), stopped_early)


def plot_path(out: str | None, config: str) -> Path:
    """Where `lr-find` saves its plot: `out` (``NAME`` without a suffix is ``NAME.png``) or
    runs/lr-find/<config stem>.png; its folder is made. A suffix matplotlib cannot write, a
    directory or an unwritable place is a mistake (one line)."""
    from matplotlib.backend_bases import FigureCanvasBase

    if not out:
        plot = Path("runs") / "lr-find" / f"{Path(config).stem}.png"
    elif out.endswith(("/", "\\")) or Path(out).is_dir():
        raise UserError(f"--out: {out} is a directory; give a file name such as lr.png")
    else:
        plot = Path(out) if Path(out).suffix else Path(out).with_name(Path(out).name + ".png")
    kinds = FigureCanvasBase.get_supported_filetypes()
    if plot.suffix[1:].lower() not in kinds:
        raise UserError(
            f"--out: matplotlib cannot write {plot.suffix} files ({out}); "
            f"use one of {', '.join('.' + k for k in sorted(kinds))}"
        )
    check_out_dir(plot.parent)
    plot.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(plot.parent, os.W_OK) or (plot.exists() and not os.access(plot, os.W_OK)):
        raise UserError(f"--out: cannot write {plot} (permission denied)")
    return plot


def run_lr_find(
    config: str, overrides: list[str], steps: int, start_lr: float, end_lr: float, out: str | None
) -> dict:
    """`trainlab lr-find`: the range test on the config's model, optimizer and data; the plot
    is saved to `out` (default runs/lr-find/<config stem>.png)."""
    cfg = load_config(config, overrides)
    plot = plot_path(out, config)  # before any work: a plot it cannot write is a mistake
    if cfg.optim.name in FULL_BATCH:
        raise UserError(
            f"optim.name: lr-find runs minibatch steps; {cfg.optim.name} is "
            "full-batch and picks its own step with a line search"
        )
    dirs = config_dirs(config)  # plugins next to the config
    splits = prepare(cfg.data, search_dirs=dirs)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, splits.input_shape, splits.num_classes, dirs)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    bs, n = cfg.train.batch_size, len(splits.train)

    def batches():  # full batches only (one smaller set: all of it), reshuffled each pass
        while True:
            yield from splits.train.batches(bs, gen, min_size=min(bs, n))

    def optimizer_at(_params: Iterable[nn.Parameter], lr: float) -> Optimizer:
        """The run's own optimizer (engine.build.make_optimizer) with optim.lr = lr."""
        at = cfg.model_copy(deep=True)
        at.optim.lr = lr
        return config_optimizer(model, at)

    result = lr_range_test(
        model, batches(), optimizer_at, start_lr=start_lr, end_lr=end_lr, steps=steps
    )
    try:
        plot_lr_find(result, plot)
    except OSError as exc:
        raise UserError(f"--out: cannot write {plot} ({exc.strerror or exc})") from None
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
