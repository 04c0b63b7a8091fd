"""Debiased exponential moving averages: the one helper behind smoothed loss curves, the
divergence guard, the lr range test and Polyak averaging of weights.

With decay beta, the moving average of x_1..x_t starts at 0 and is bias-corrected as Adam's
moments are:

    avg_t = beta * avg_{t-1} + (1 - beta) * x_t,      debiased_t = avg_t / (1 - beta^t)

Equivalently, kept in the debiased form directly (what in-place weight averaging needs):

    debiased_t = d_t * debiased_{t-1} + (1 - d_t) * x_t,  d_t = beta (1 - beta^(t-1)) / (1 - beta^t)

so d_1 = 0 (the first average is the first value) and d_t -> beta.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from trainlab.errors import UserError


def debiased_decay(beta: float, t: int) -> float:
    """d_t: the decay that updates the debiased average in place at update t (1-based)."""
    return beta * (1.0 - beta ** (t - 1)) / (1.0 - beta**t) if beta > 0 else 0.0


@dataclass
class DebiasedEMA:
    """A running debiased average of scalars: `update(x)` returns debiased_t."""

    beta: float
    raw: float = 0.0  # avg_t, started at 0
    count: int = 0  # t

    def update(self, x: float) -> float:
        self.count += 1
        self.raw = self.beta * self.raw + (1.0 - self.beta) * x
        return self.value

    @property
    def value(self) -> float:
        return self.raw / (1.0 - self.beta**self.count) if self.count else math.nan


def smooth(values: Iterable[float], beta: float = 0.98) -> list[float]:
    """The debiased moving average of a curve (as fastai plots a loss). Non-finite values give
    NaN and are skipped: t counts the finite values so far."""
    if not 0.0 <= beta < 1.0:
        raise UserError(f"smooth beta: must be in [0, 1), got {beta}")
    ema = DebiasedEMA(beta)
    return [ema.update(v) if math.isfinite(v) else math.nan for v in map(float, values)]
