"""Learning-rate schedules (CS231n lecture 7): step, exponential, 1/t, cosine, restarts, warmup.

Every schedule is a torch ``LRScheduler`` with a closed form: the learning rate of a param group
at scheduler step ``s`` is ``base_lr * warmup(s) * decay(t)``, where ``base_lr`` is the group's own
starting rate (so groups with lr multipliers keep their ratio) and ``t`` is the time in epochs
(fractional when the scheduler is stepped once per optimizer step, ``per="step"``; whole epochs
when it is stepped once per epoch, ``per="epoch"``). A closed form makes resuming exact and lets
any torch optimizer (ours or ``torch.optim``) use them.

The lecture's advice sits in the defaults: ``constant`` (no decay) unless a decay is asked for;
decay is a second-order hyperparameter.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from trainlab import names
from trainlab.errors import UserError

SCHEDULES = names.SCHEDULES  # schedule.name
PER = names.SCHEDULE_PER  # schedule.per

__all__ = [
    "PER",
    "SCHEDULES",
    "Constant",
    "CosineDecay",
    "CosineRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "Schedule",
    "StepDecay",
    "create",
    "cycle_ends",
    "lr_values",
]


# ---------------------------------------------------------------------------------------------
# validation (one line per mistake, naming the field)


def _check_int(field: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{field}: must be a whole number >= {minimum}, got {value!r}")
    return value


def _check_float(
    field: str,
    value: object,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        value = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(value)
        ok = ok and (value > low if low_open else value >= low)
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        hi = "" if math.isinf(high) else (f" and < {high:g}" if high_open else f" and <= {high:g}")
        raise UserError(f"{field}: must be a finite number {lo}{hi}, got {value!r}")
    return value  # type: ignore[return-value]


def _check_per(per: object) -> str:
    if per not in PER:
        raise UserError(f"schedule.per: must be one of {', '.join(PER)}, got {per!r}")
    return per  # type: ignore[return-value]


def _units_per_epoch(per: str, steps_per_epoch: int) -> int:
    """Scheduler steps per epoch: one per optimizer step, or one per epoch."""
    return steps_per_epoch if per == "step" else 1


def _warmup_units(warmup_epochs: float, epochs: int, units_per_epoch: int, per: str) -> int:
    """Number of scheduler steps the linear warmup lasts (at least 1 if any warmup is asked)."""
    _check_float("schedule.warmup_epochs", warmup_epochs, 0.0, float(epochs), high_open=True)
    if per == "epoch" and warmup_epochs != int(warmup_epochs):
        raise UserError(
            "schedule.warmup_epochs: must be a whole number of epochs when schedule.per is "
            f"'epoch', got {warmup_epochs!r}"
        )
    if warmup_epochs == 0:
        return 0
    return max(1, round(warmup_epochs * units_per_epoch))


def _cycle_bounds(start: int, end: int, cycles: int) -> list[int]:
    """Boundaries of `cycles` near-equal cycles over scheduler steps [start, end)."""
    span = end - start
    if cycles > span:
        raise UserError(
            f"schedule.cycles: must be <= the {span} scheduler steps after warmup "
            f"(each cycle needs at least one step), got {cycles}"
        )
    return [start + round(i * span / cycles) for i in range(cycles + 1)]


# ---------------------------------------------------------------------------------------------
# the schedules


class Schedule(LRScheduler):
    """Base: lr = base_lr * warmup(s) * decay(s) at scheduler step s (closed form).

    Linear warmup over W scheduler steps, from base_lr / W on the first step to base_lr:
        warmup(s) = min(1, (s + 1) / W)
    Subclasses give ``decay(s)``; continuous decays run over the steps after the warmup.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        epochs: int,
        steps_per_epoch: int = 1,
        warmup_epochs: float = 0.0,
        per: str = "step",
        last_epoch: int = -1,
    ) -> None:
        self.epochs = _check_int("epochs", epochs, 1)
        self.steps_per_epoch = _check_int("steps_per_epoch", steps_per_epoch, 1)
        self.per = _check_per(per)
        self.units_per_epoch = _units_per_epoch(per, steps_per_epoch)
        self.total_units = epochs * self.units_per_epoch
        self.warmup_units = _warmup_units(warmup_epochs, epochs, self.units_per_epoch, per)
        self.warmup_epochs = float(warmup_epochs)
        self._prepare()
        super().__init__(optimizer, last_epoch)

    def _prepare(self) -> None:
        """Hook for subclasses that derive state from the step counts (before the first step)."""

    def factor(self, s: int) -> float:
        """Multiplier of every group's base_lr at scheduler step ``s`` (0 = the first step)."""
        ramp = min(1.0, (s + 1) / self.warmup_units) if self.warmup_units else 1.0
        return ramp * self.decay(s)

    def decay(self, s: int) -> float:
        """The decay multiplier at scheduler step ``s``, before warmup is applied."""
        raise NotImplementedError

    def epochs_after_warmup(self, s: int) -> float:
        """Time t in epochs since the warmup ended (0 during the warmup)."""
        return max(0, s - self.warmup_units) / self.units_per_epoch

    def get_lr(self) -> list:  # type: ignore[override]
        f = self.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]

    _get_closed_form_lr = get_lr


class Constant(Schedule):
    """No decay (the lecture's default: start without decay). decay(t) = 1."""

    def decay(self, s: int) -> float:
        return 1.0


class StepDecay(Schedule):
    """Step decay (ResNet: x0.1 at fixed epochs): lr_t = lr_0 * gamma^(number of milestones <= t).

    Milestones are epochs counted from the start of training (warmup included).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        epochs: int,
        milestones: Sequence[float],
        gamma: float = 0.1,
        **kwargs,
    ) -> None:
        self.gamma = _check_float("schedule.gamma", gamma, 0.0, 1.0, low_open=True)
        _check_int("epochs", epochs, 1)
        if isinstance(milestones, str | bytes) or not isinstance(milestones, Sequence):
            raise UserError(f"schedule.milestones: must be a list of epochs, got {milestones!r}")
        for m in milestones:
            _check_float("schedule.milestones", m, 0.0, float(epochs), low_open=True)
        self.milestones = sorted(float(m) for m in milestones)
        super().__init__(optimizer, epochs=epochs, **kwargs)

    def decay(self, s: int) -> float:
        t = s / self.units_per_epoch
        return self.gamma ** bisect.bisect_right(self.milestones, t + 1e-12)


class ExponentialDecay(Schedule):
    """Exponential decay: lr_t = lr_0 * gamma^t, gamma per epoch (0.95 halves lr in ~14 epochs)."""

    def __init__(self, optimizer: Optimizer, *, gamma: float, **kwargs) -> None:
        self.gamma = _check_float("schedule.gamma", gamma, 0.0, 1.0, low_open=True)
        super().__init__(optimizer, **kwargs)

    def decay(self, s: int) -> float:
        return self.gamma ** self.epochs_after_warmup(s)


class InverseTimeDecay(Schedule):
    """1/t decay: lr_t = lr_0 / (1 + decay * t), t in epochs."""

    def __init__(self, optimizer: Optimizer, *, decay: float, **kwargs) -> None:
        self.decay_rate = _check_float("schedule.decay", decay, 0.0)
        super().__init__(optimizer, **kwargs)

    def decay(self, s: int) -> float:
        return 1.0 / (1.0 + self.decay_rate * self.epochs_after_warmup(s))


def _cosine(fraction: float, final: float) -> float:
    """Cosine from 1 to `final` as `fraction` goes 0 -> 1:
    lr_t = lr_min + (lr_0 - lr_min) * (1 + cos(pi * t / T)) / 2   (divided by lr_0)
    """
    return final + (1.0 - final) * (1.0 + math.cos(math.pi * fraction)) / 2.0


class CosineDecay(Schedule):
    """Cosine decay from lr_0 to final_lr_fraction * lr_0 over the epochs after warmup (T)."""

    def __init__(self, optimizer: Optimizer, *, final_lr_fraction: float = 0.0, **kwargs) -> None:
        self.final_lr_fraction = _check_float(
            "schedule.final_lr_fraction", final_lr_fraction, 0.0, 1.0
        )
        super().__init__(optimizer, **kwargs)

    def decay(self, s: int) -> float:
        span = self.total_units - self.warmup_units
        u = max(0, s - self.warmup_units)
        return _cosine(min(1.0, u / span), self.final_lr_fraction)


class CosineRestarts(Schedule):
    """Cosine with warm restarts (SGDR, Loshchilov & Hutter; snapshot ensembles, Huang et al.).

    The steps after warmup are cut into `cycles` (near-)equal cycles; each is a cosine from lr_0
    down towards final_lr_fraction * lr_0, reached exactly at the cycle's end, where a snapshot is
    taken and the rate jumps back to lr_0.
    """

    def __init__(
        self, optimizer: Optimizer, *, cycles: int, final_lr_fraction: float = 0.0, **kwargs
    ) -> None:
        self.cycles = _check_int("schedule.cycles", cycles, 1)
        self.final_lr_fraction = _check_float(
            "schedule.final_lr_fraction", final_lr_fraction, 0.0, 1.0
        )
        super().__init__(optimizer, **kwargs)

    def _prepare(self) -> None:
        self.bounds = _cycle_bounds(self.warmup_units, self.total_units, self.cycles)

    def decay(self, s: int) -> float:
        if s >= self.bounds[-1]:
            return self.final_lr_fraction
        i = max(0, bisect.bisect_right(self.bounds, s) - 1)
        start, end = self.bounds[i], self.bounds[i + 1]
        return _cosine(max(0, s - start) / (end - start), self.final_lr_fraction)


# ---------------------------------------------------------------------------------------------
# the interface the trainer and configs use


def create(
    optimizer: Optimizer,
    *,
    name: str,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 0.0,
    milestones: Sequence[float] = (),
    gamma: float = 0.1,
    decay: float = 1.0,
    cycles: int = 1,
    final_lr_fraction: float = 0.0,
    per: str = "step",
) -> LRScheduler:
    """Build the schedule named in a config (``schedule.name``) for ``optimizer``.

    Call the result's ``.step()`` after every optimizer step (``per="step"``) or after every
    epoch (``per="epoch"``). ``milestones`` (epochs) default to 50% and 75% of ``epochs`` for
    ``step``; ``gamma`` is the factor per milestone for ``step`` and per epoch for
    ``exponential`` (its 0.1 default divides the rate by 10 every epoch: set 0.9-0.99 there).
    """
    if name not in SCHEDULES:
        raise UserError(f"schedule.name: must be one of {', '.join(SCHEDULES)}, got {name!r}")
    _check_int("schedule.cycles", cycles, 1)
    _check_float("schedule.gamma", gamma, 0.0, 1.0, low_open=True)
    _check_float("schedule.decay", decay, 0.0)
    _check_float("schedule.final_lr_fraction", final_lr_fraction, 0.0, 1.0)
    common = dict(
        epochs=epochs, steps_per_epoch=steps_per_epoch, warmup_epochs=warmup_epochs, per=per
    )
    settings = dict(
        milestones=milestones,
        gamma=gamma,
        decay=decay,
        cycles=cycles,
        final_lr_fraction=final_lr_fraction,
    )
    return _BUILDERS[name](optimizer, common, **settings)


def _step_decay(
    optimizer: Optimizer,
    common: dict[str, Any],
    *,
    milestones: Sequence[float],
    gamma: float,
    **_: Any,
) -> StepDecay:
    """Step decay; without milestones it decays after 50% and 75% of the epochs."""
    if milestones is not None and not isinstance(milestones, Sequence):
        raise UserError(f"schedule.milestones: must be a list of epochs, got {milestones!r}")
    if not milestones:
        epochs = _check_int("epochs", common["epochs"], 1)
        milestones = [0.5 * epochs, 0.75 * epochs]
    return StepDecay(optimizer, milestones=milestones, gamma=gamma, **common)


#: schedule.name -> builder(optimizer, common, **settings), with exactly the names of
#: trainlab.names.SCHEDULES; each builder takes the settings its schedule reads
_BUILDERS: dict[str, Callable[..., Schedule]] = names.covers(
    {
        "constant": lambda optimizer, common, **_: Constant(optimizer, **common),
        "step": _step_decay,
        "exponential": lambda optimizer, common, *, gamma, **_: ExponentialDecay(
            optimizer, gamma=gamma, **common
        ),
        "inverse_time": lambda optimizer, common, *, decay, **_: InverseTimeDecay(
            optimizer, decay=decay, **common
        ),
        "cosine": lambda optimizer, common, *, final_lr_fraction, **_: CosineDecay(
            optimizer, final_lr_fraction=final_lr_fraction, **common
        ),
        "cosine_restarts": lambda optimizer, common, *, cycles, final_lr_fraction, **_: (
            CosineRestarts(optimizer, cycles=cycles, final_lr_fraction=final_lr_fraction, **common)
        ),
    },
    SCHEDULES,
    "trainlab.schedules._BUILDERS",
)


def cycle_ends(
    epochs: int, steps_per_epoch: int, cycles: int, *, warmup_epochs: float = 0.0, per: str = "step"
) -> list[int]:
    """Optimizer steps taken when each cosine_restarts cycle ends (save a snapshot there).

    Entry i is the global step count after the last step of cycle i (equivalently the 0-based
    index of the first step of cycle i+1); the last entry is ``epochs * steps_per_epoch``.
    Pass the same ``warmup_epochs`` and ``per`` as to :func:`create`.
    """
    _check_int("epochs", epochs, 1)
    _check_int("steps_per_epoch", steps_per_epoch, 1)
    _check_int("schedule.cycles", cycles, 1)
    units = _units_per_epoch(_check_per(per), steps_per_epoch)
    warm = _warmup_units(warmup_epochs, epochs, units, per)
    bounds = _cycle_bounds(warm, epochs * units, cycles)
    steps_per_unit = steps_per_epoch // units  # 1 when per="step", steps_per_epoch when "epoch"
    return [b * steps_per_unit for b in bounds[1:]]


def lr_values(
    name: str, *, epochs: int, steps_per_epoch: int, lr: float = 1.0, per: str = "step", **kwargs
) -> list[float]:
    """The learning rate at every scheduler step of a run (for plots and previews)."""
    import torch

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    schedule = create(
        optimizer, name=name, epochs=epochs, steps_per_epoch=steps_per_epoch, per=per, **kwargs
    )
    assert isinstance(schedule, Schedule)
    n = epochs * _units_per_epoch(per, steps_per_epoch)
    return [lr * schedule.factor(s) for s in range(n)]
