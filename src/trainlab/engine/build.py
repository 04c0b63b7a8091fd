"""From config to the objects the loop runs: device, param groups, optimizer, schedule, penalty."""

from __future__ import annotations

import torch
from torch import nn

from trainlab import schedules
from trainlab.config import ExperimentConfig, TrainConfig
from trainlab.errors import UserError
from trainlab.optim import FULL_BATCH, create

DEFAULT_GAMMA = {"step": 0.1, "exponential": 0.95}  # x0.1 per milestone (ResNet); x0.95 per epoch
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "train.device: cuda was asked for but torch sees no CUDA device; use cpu or auto"
        )
    return torch.device(name)


def split_decay(
    model: nn.Module, no_decay: list[str]
) -> tuple[list[tuple[str, nn.Parameter]], list[tuple[str, nn.Parameter]]]:
    """(decayed, exempt) named parameters. `bias` exempts biases, `norm` the parameters of
    normalization layers, any other word the parameters whose name contains it (pytorch#1402)."""
    norm_params = {
        id(p)
        for m in model.modules()
        if isinstance(m, NORM_LAYERS)
        for p in m.parameters(recurse=False)
    }
    decay, exempt = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        is_exempt = (
            ("bias" in no_decay and leaf == "bias")
            or ("norm" in no_decay and id(p) in norm_params)
            or any(w not in ("bias", "norm") and w in name for w in no_decay)
        )
        (exempt if is_exempt else decay).append((name, p))
    return decay, exempt


def param_groups(
    model: nn.Module, cfg: ExperimentConfig, lr_mult: dict[str, float] | None = None
) -> list[dict]:
    """Param groups of (name, parameter) pairs: exempt parameters get weight_decay 0. `lr_mult`
    maps a parameter-name prefix to a learning-rate multiplier (fine-tuning uses it)."""
    decay, exempt = split_decay(model, cfg.train.no_decay)
    wd = getattr(cfg.optim, "weight_decay", 0.0)
    groups: dict[tuple[float, float], list] = {}
    for params, group_wd in ((decay, wd), (exempt, 0.0)):
        for name, p in params:
            mult = 1.0
            for prefix, m in (lr_mult or {}).items():
                if name.startswith(prefix):
                    mult = m
            groups.setdefault((group_wd, mult), []).append((name, p))
    return [
        {"params": named, "weight_decay": group_wd, "lr": cfg.optim.lr * mult}
        for (group_wd, mult), named in groups.items()
        if named
    ]


def make_optimizer(
    model: nn.Module, cfg: ExperimentConfig, lr_mult: dict[str, float] | None = None
) -> torch.optim.Optimizer:
    """The config's optimizer over the model. `optim.lr` is the optimizer's base rate (its
    `defaults["lr"]`, which lr-find scales) and each param group's lr is that times its
    multiplier, set once by param_groups; the section's other settings go to create() as they
    are (weight decay per group)."""
    kwargs = cfg.optim.kwargs()
    if cfg.optim.name in FULL_BATCH:  # one flat problem: no groups
        params = [p for p in model.parameters() if p.requires_grad]
        return create(cfg.optim.name, params, **kwargs)
    kwargs.pop("weight_decay", None)
    return create(cfg.optim.name, param_groups(model, cfg, lr_mult), **kwargs)


def schedule_used(cfg: ExperimentConfig) -> tuple[str, int, list[float]]:
    """(name, cycles, milestones) of the schedule a run really follows: `train.snapshots: M`
    makes it cosine with M restarts (one cycle per snapshot); step decay without milestones
    decays after 50% and 75% of the epochs (schedules.create)."""
    s = cfg.schedule
    if cfg.train.snapshots:
        return "cosine_restarts", cfg.train.snapshots, []
    milestones = [float(m) for m in s.milestones]
    if s.name == "step" and not milestones:
        milestones = [0.5 * cfg.train.epochs, 0.75 * cfg.train.epochs]
    return s.name, s.cycles, milestones


def make_schedule(
    optimizer: torch.optim.Optimizer, cfg: ExperimentConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    s = cfg.schedule
    name, cycles, _ = schedule_used(cfg)
    gamma = s.gamma if s.gamma is not None else DEFAULT_GAMMA.get(name, 0.1)
    try:
        return schedules.create(
            optimizer,
            name=name,
            epochs=cfg.train.epochs,
            steps_per_epoch=steps_per_epoch,
            warmup_epochs=s.warmup_epochs,
            milestones=list(s.milestones),
            gamma=gamma,
            decay=s.decay,
            cycles=cycles,
            final_lr_fraction=s.final_lr_fraction,
            per=s.per,
        )
    except UserError as err:
        if cfg.train.snapshots:  # the cycles come from train.snapshots: name that field
            raise UserError(str(err).replace("schedule.cycles", "train.snapshots")) from None
        raise


class WeightPenalty:
    """The lecture's regularization term added to the data loss:
    R(W) = l2/2 * sum(W^2) + l1 * sum(|W|), over the decayed parameters (biases, norms exempt)."""

    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        self.l2, self.l1 = cfg.l2, cfg.l1
        self.params = [p for _, p in split_decay(model, cfg.no_decay)[0]]

    @property
    def active(self) -> bool:
        return self.l2 > 0 or self.l1 > 0

    def __call__(self) -> torch.Tensor:
        total = torch.zeros((), device=self.params[0].device if self.params else "cpu")
        if self.l2 > 0:
            total = total + 0.5 * self.l2 * sum(p.pow(2).sum() for p in self.params)
        if self.l1 > 0:
            total = total + self.l1 * sum(p.abs().sum() for p in self.params)
        return total
