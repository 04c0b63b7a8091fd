"""The pruners' parts of our own: a coarse-to-fine trial judged within its round, a study's
complete trials listed once per finished trial, and a trial judged where it trains
(`LocalPruning`).

`LocalPruning`'s contract: for a pruner that `judges_alone` (its answer is a function of the
study's COMPLETE trials, its direction and the trial's own reports, and it writes nothing) and a
view that can no longer change (under the lag, trial n's pruner reads the trials below n - lag,
all finished when n starts: `Search.local_pruning` checks), `LocalPruning.report` gives for each
epoch exactly the answer the driver's `Search.report` would, with no round trip to the driver.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from trainlab.search.strategies.base import (
    ROUND_ATTR,
)


class _RoundView:
    """A study seen through one coarse-to-fine round: `get_trials` lists that round's trials
    only; everything else is the study's own."""

    def __init__(self, study: Study, round_index: int) -> None:
        self._study, self._round = study, round_index

    def get_trials(
        self, deepcopy: bool = True, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return [
            t
            for t in self._study.get_trials(deepcopy=deepcopy, states=states)
            if t.system_attrs.get(ROUND_ATTR) == self._round
        ]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class CompleteTrialsKept:
    """A study as a pruner reads it, its COMPLETE trials listed once and kept until `forget`.

    Optuna's median (percentile) pruner lists the study's complete trials on every report, and
    on an RDB storage that list re-reads every running trial with all its reports: 5 ms a report
    on SQLite on a quiet machine, 30 ms on a busy one. A driver that is its study's only writer
    knows when the list changes (its own tells) and calls `forget` then, so the pruner answers
    exactly as it would on the study itself. Any other listing goes to the study.
    """

    def __init__(self, study: Study) -> None:
        self._study = study
        self._complete: list[FrozenTrial] | None = None

    def forget(self) -> None:
        """A trial finished: list the complete trials again when next asked."""
        self._complete = None

    def get_trials(
        self, deepcopy: bool = True, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        if states is None or tuple(states) != (TrialState.COMPLETE,):
            return self._study.get_trials(deepcopy=deepcopy, states=states)
        if self._complete is None:
            self._complete = self._study.get_trials(deepcopy=False, states=states)
        return copy.deepcopy(self._complete) if deepcopy else list(self._complete)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class SameRoundPruner(optuna.pruners.BasePruner):
    """Prune a coarse-to-fine trial by comparing it with the trials of its own round only.

    A later round samples a zoomed box and trains longer, so at the same epoch its trials are
    all in the good region: against the wide first round's curves half of them fall below the
    median and would be stopped (measured: 5 of the 6 last-round trials of the MNIST-1D demo).
    """

    def __init__(self, base: optuna.pruners.BasePruner) -> None:
        self.base = base

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        round_index = trial.system_attrs.get(ROUND_ATTR)
        if round_index is None:
            return self.base.prune(study, trial)
        return self.base.prune(_RoundView(study, round_index), trial)  # type: ignore[arg-type]


def judges_alone(pruner: optuna.pruners.BasePruner) -> bool:
    """Whether `pruner`'s answer reads nothing but the study's COMPLETE trials, its direction and
    the trial's own reports, and writes nothing: Optuna's median, percentile, threshold, nop and
    patient (over one of those) pruners, exactly those classes (a subclass may read more), and
    `SameRoundPruner` over one of them. Successive halving and Hyperband write to the storage as
    they prune; a pruner of the user's own may read anything."""
    kind = type(pruner)
    plain = (
        optuna.pruners.MedianPruner,
        optuna.pruners.PercentilePruner,
        optuna.pruners.ThresholdPruner,
        optuna.pruners.NopPruner,
    )
    if kind in plain:
        return True
    if kind is optuna.pruners.PatientPruner:
        wrapped = pruner._wrapped_pruner  # type: ignore[attr-defined]
        return wrapped is None or judges_alone(wrapped)
    if kind is SameRoundPruner:
        return judges_alone(pruner.base)  # type: ignore[attr-defined]
    return False


class FrozenView:
    """A study as a `judges_alone` pruner reads it, fixed: its direction and its COMPLETE trials
    (those of the trial's lagged view). Asking for other trials is a mistake of the caller
    (`judges_alone` let a pruner through that reads them): RuntimeError."""

    def __init__(self, direction: optuna.study.StudyDirection, complete: list[FrozenTrial]) -> None:
        self.direction = direction
        self._complete = complete

    @property
    def directions(self) -> list[optuna.study.StudyDirection]:
        return [self.direction]

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        if states is None or list(states) != [TrialState.COMPLETE]:
            raise RuntimeError(f"FrozenView holds the COMPLETE trials only, not {states}")
        return copy.deepcopy(self._complete) if deepcopy else list(self._complete)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        return self.get_trials(deepcopy, states)


class LocalPruning:
    """One trial's pruning, run where the trial trains: the pruner, the frozen view its answers
    read (`FrozenView`), the trial as it was handed out, and its last epoch. `report` records an
    epoch's value on the trial and answers as the driver would (see the module docstring):
    a missing or non-finite value is not recorded and never stops the trial, a step reported
    twice keeps its first value (Optuna's `Trial.report`), and a trial is never stopped at its
    last epoch (that saves nothing and loses a result). Picklable: it travels with the job."""

    def __init__(
        self,
        pruner: optuna.pruners.BasePruner,
        view: FrozenView,
        trial: FrozenTrial,
        last_step: float = math.inf,
    ) -> None:
        self.pruner, self.view, self.trial, self.last_step = pruner, view, trial, last_step

    def report(self, step: int, value: float | None) -> bool:
        """True: stop the trial (pruned)."""
        if value is None or not math.isfinite(value):
            return False
        self.trial.intermediate_values.setdefault(int(step), float(value))
        prune = bool(self.pruner.prune(self.view, self.trial))  # type: ignore[arg-type]
        return prune and step < self.last_step
