"""The divergence guard: stop a run whose loss exploded (the lecture: a loss that explodes means the
learning rate is too high). The trainer runs it every step; the advice rules re-run it over the
per-step losses of a finished run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trainlab.errors import UserError
from trainlab.smoothing import DebiasedEMA

# A run diverges when the loss is NaN/inf, or its short moving average exceeds this many times the
# initial loss (dimensionless ratio of losses). Measured on digits: SGD lr 10 goes
# 2.3 -> 4.7 -> 132 and is stopped at step 3; Adam lr 0.05 (too high, but it learns) has single
# minibatches at 1.8-4.4x the initial loss while its moving average never passes 1.0x.
DIVERGE_FACTOR = 3.0
# The guard compares a debiased moving average of the per-step loss with memory ~1/(1-beta)
# = 10 steps, so one unlucky minibatch does not stop a run, while a real explosion (geometric
# growth) is caught within a step or two of crossing the line.
GUARD_BETA = 0.9


@dataclass
class DivergenceGuard:
    """Per-step divergence check: call `update(loss)` after every optimizer step.

    It fires (returns True, and keeps returning True) when the loss is NaN/inf, or when the
    debiased moving average of the loss (beta=GUARD_BETA) exceeds `factor` x `initial_loss`.
    `initial_loss` is the mean of the finite losses of the first max(1, warmup_steps) steps (with
    warmup_steps=0: the very first loss, measured before any update). While those steps are still
    coming in, the mean so far is the reference. `diverged_at` is the 1-based step number.
    """

    factor: float = DIVERGE_FACTOR
    warmup_steps: int = 0
    initial_loss: float | None = field(default=None, init=False)
    diverged_at: int | None = field(default=None, init=False)
    steps: int = field(default=0, init=False)
    _initial_sum: float = field(default=0.0, init=False, repr=False)
    _initial_count: int = field(default=0, init=False, repr=False)
    _ema: DebiasedEMA = field(
        default_factory=lambda: DebiasedEMA(GUARD_BETA), init=False, repr=False
    )

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and self.factor > 1.0):
            raise UserError(f"diverge_factor: must be a finite number > 1, got {self.factor}")
        if (
            isinstance(self.warmup_steps, bool)
            or not isinstance(self.warmup_steps, int)
            or (self.warmup_steps < 0)
        ):
            raise UserError(f"warmup_steps: must be an integer >= 0, got {self.warmup_steps!r}")

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def state_dict(self) -> dict[str, float | int | None]:
        """Everything `update` carries from step to step, so a resumed run checks the same way."""
        return {
            "initial_loss": self.initial_loss,
            "diverged_at": self.diverged_at,
            "steps": self.steps,
            "initial_sum": self._initial_sum,
            "initial_count": self._initial_count,
            "avg": self._ema.raw,
            "avg_count": self._ema.count,
        }

    def load_state_dict(self, state: dict[str, float | int | None]) -> None:
        self.initial_loss = state["initial_loss"]
        self.diverged_at = state.get("diverged_at")
        self.steps = int(state.get("steps", 0))
        # a checkpoint with only initial_loss: keep it as the reference, not the next loss
        done = max(1, self.warmup_steps) if self.initial_loss is not None else 0
        self._initial_count = int(state.get("initial_count", done))
        self._initial_sum = float(state.get("initial_sum", (self.initial_loss or 0.0) * done))
        self._ema = DebiasedEMA(
            GUARD_BETA, float(state.get("avg", 0.0)), int(state.get("avg_count", 0))
        )

    def update(self, loss: float) -> bool:
        """Record one step's training loss; True when the run has diverged."""
        self.steps += 1
        if self.diverged_at is not None:
            return True
        value = float(loss)
        if not math.isfinite(value):
            self.diverged_at = self.steps
            return True
        if self._initial_count < max(1, self.warmup_steps):
            self._initial_sum += value
            self._initial_count += 1
            self.initial_loss = self._initial_sum / self._initial_count
        smoothed = self._ema.update(value)
        # A zero or negative initial loss gives no scale to compare against.
        if self.initial_loss is not None and self.initial_loss > 0.0:
            if smoothed > self.factor * self.initial_loss:
                self.diverged_at = self.steps
                return True
        return False
