"""The lag: trial n is proposed and pruned from a fixed view of the study, the trials numbered
below n - L, so a parallel search gives the same trials whatever order its trials finish in.

A model-based sampler (auto's Gaussian process, TPE, CMA-ES) or a pruner that reads the study
while other trials run sees whichever of them happen to have finished: with several workers the
study depends on timing. Here every one of them reads, for trial ``n``, a `LaggedStudy`:

- trials numbered below ``n - lag``: as they are (the driver waits until they have finished
  before it asks trial n, `blocked`);
- trials numbered ``n - lag`` to ``n - 1`` (the "window"): shown RUNNING, with their params and
  nothing else (no value, no reports, no attrs), whatever they really are by now; a trial whose
  end was known when trial n was asked (`settled`: a resumed study's interrupted trials, an
  invalid configuration told at once) is shown as it is;
- trial n itself as it is; later trials not at all.

Which of those trials have finished is then irrelevant, and so is how many workers run: with at
most ``lag + 1`` workers a free worker finds the trials below ``n - lag`` finished unless they
finished out of order, and with more it waits. ``lag = 0``: every trial sees all earlier ones,
finished (a sequential search).

`LaggedSampler` wraps a sampler so that each of its calls gets the view, and draws its random
numbers from generators seeded by (seed, trial number, call): a proposal depends only on the
seed, the trial number and the view, never on the order in which processes or threads ask
(Optuna keeps its generators in ``_rng`` attributes, reseeded here; its Gaussian process also
starts each fit from the last one of the same process, so a GP study continued by another
process can differ slightly). Samplers whose proposals read no results (random, grid) and
phased ones (coarse-to-fine, block: their round barriers already fix what they read) are not
wrapped (`reads_history`).
"""

from __future__ import annotations

import copy
import datetime
import math
import threading
import time
import zlib
from collections.abc import Callable, Container, Iterable
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from trainlab.search.strategies.auto import AutoSampler
from trainlab.search.strategies.base import RandomSampler

POLL_SECONDS = 0.02  # how often a sampler asked in a thread looks whether it may sample
_EPOCH = datetime.datetime(1970, 1, 1)  # start time of a masked trial that had none (WAITING)

Settled = Callable[[FrozenTrial], bool]


def _never(trial: FrozenTrial) -> bool:
    return False


def masked(trial: FrozenTrial) -> FrozenTrial:
    """`trial` as the window shows it: RUNNING with its params only."""
    return FrozenTrial(
        number=trial.number,
        state=TrialState.RUNNING,
        value=None,
        values=None,
        datetime_start=trial.datetime_start or _EPOCH,
        datetime_complete=None,
        params=dict(trial.params),
        distributions=dict(trial.distributions),
        user_attrs={},
        system_attrs={},
        intermediate_values={},
        trial_id=trial._trial_id,
    )


class LaggedStudy:
    """`study` as trial `number` sees it with lag `lag` (see the module docstring): its trial
    listings (``get_trials``, ``_get_trials``, ``trials``, ``best_trial``...) hold the lagged
    trials; everything else (``direction``, ``_storage`` for a sampler's own attrs) is the
    study's. `settled`: window trials shown as they are."""

    def __init__(self, study: Any, number: int, lag: int, settled: Settled = _never) -> None:
        self._study, self._number, self._lag, self._settled = study, number, lag, settled

    def _view(self, trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
        cut, out = self._number - self._lag, []
        for t in trials:
            if t.number < cut or t.number == self._number:
                out.append(t)
            elif t.number < self._number:
                out.append(t if t.state == TrialState.WAITING or self._settled(t) else masked(t))
        return out

    def _listing(
        self,
        deepcopy: bool,
        states: Container[TrialState] | None,
        read: Callable[[Container[TrialState] | None], list[FrozenTrial]],
    ) -> list[FrozenTrial]:
        # a window trial shows RUNNING whatever it is: a listing that holds RUNNING trials reads
        # them all; another (the pruners' COMPLETE-only one, kept cached) reads its own states,
        # whose window trials the view then shows RUNNING and the filter drops
        whole = states is None or (self._lag > 0 and TrialState.RUNNING in states)
        trials = self._view(read(None if whole else states))
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._listing(
            deepcopy, states, lambda s: self._study.get_trials(deepcopy=False, states=s)
        )

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        read = getattr(self._study, "_get_trials", None)
        if read is None:  # a view over a view-like object (CompleteTrialsKept)
            return self.get_trials(deepcopy, states)
        return self._listing(
            deepcopy, states, lambda s: read(deepcopy=False, states=s, use_cache=use_cache)
        )

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()

    @property
    def best_trial(self) -> FrozenTrial:
        done = [
            t
            for t in self.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None
        ]
        if not done:
            raise ValueError("No trials are completed yet.")
        sign = -1.0 if self._study.direction == StudyDirection.MAXIMIZE else 1.0
        return copy.deepcopy(min(done, key=lambda t: (sign * t.value, t.number)))

    @property
    def best_value(self) -> float:
        return self.best_trial.value

    @property
    def best_params(self) -> dict[str, Any]:
        return self.best_trial.params

    @property
    def best_trials(self) -> list[FrozenTrial]:
        return [self.best_trial]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


# --------------------------------------------------------------------------- which ones read


def reads_history(sampler: BaseSampler) -> bool:
    """Whether `sampler`'s proposals read other trials' results within a phase: auto and
    Optuna's model-based samplers do; trainlab's random, grid, coarse-to-fine and block
    (round barriers) and Optuna's random, grid and QMC samplers do not."""
    own = getattr(sampler, "reads_history", None)
    if own is not None:
        return bool(own)
    if isinstance(sampler, AutoSampler):
        return True
    plain = (
        RandomSampler,
        optuna.samplers.RandomSampler,
        optuna.samplers.GridSampler,
        optuna.samplers.QMCSampler,
        optuna.samplers.BruteForceSampler,
    )
    return not isinstance(sampler, plain)


def history_from(reader: Any, lag: int) -> float:
    """The first trial number whose proposal (a sampler) or pruning (a pruner) may read other
    trials' results; trials below it need not wait. Infinite for a pruner that never prunes."""
    if isinstance(reader, optuna.pruners.BasePruner) and hasattr(reader, "base"):
        reader = reader.base  # SameRoundPruner: its base pruner, within one round's trials
    if isinstance(reader, optuna.pruners.NopPruner):
        return float("inf")
    if isinstance(reader, LaggedSampler):
        return history_from(reader.inner, lag)
    if isinstance(reader, BaseSampler) and not reads_history(reader):
        return float("inf")
    if isinstance(reader, AutoSampler):  # its Latin-hypercube start reads no result
        return int(getattr(reader, "startup", 0))
    # model-based samplers and percentile pruners that start after n complete trials: trial
    # n's view holds at most n - lag trials
    startup = getattr(reader, "_n_startup_trials", 0)
    if isinstance(reader, optuna.pruners.BasePruner) and not isinstance(
        reader, optuna.pruners.PercentilePruner
    ):
        startup = 0  # successive halving, a custom pruner: from the first trial
    return startup + lag if startup else 0


def first_unfinished(trials: Iterable[FrozenTrial], below: int) -> int | None:
    """The lowest-numbered trial below number `below` that has not finished (`trials` in
    number order, as Optuna lists them), or None."""
    return next((t.number for t in trials if t.number < below and not t.state.is_finished()), None)


def blocked(study: Study, lag: int, readers: Iterable[Any]) -> int | None:
    """The trial the next ask must wait for (the lowest-numbered unfinished trial below
    ``n - lag``), or None when trial n may be asked now. No wait when the ask takes a WAITING
    trial (an enqueued retry: its params are fixed), or none of `readers` (the sampler, the
    pruner) reads results for trial n (`history_from`)."""
    first = min((history_from(r, lag) for r in readers), default=float("inf"))
    if math.isinf(first):
        return None
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return None
    n = len(trials)  # the next trial's number (Optuna numbers a study's trials 0, 1, ...)
    if n < first:
        return None
    return first_unfinished(trials, n - lag)  # no trial WAITS here: the unfinished are RUNNING


# --------------------------------------------------------------------------- the sampler


def _samplers(sampler: Any) -> Iterable[Any]:
    """`sampler` and the samplers it holds (GP's independent sampler, auto's model...)."""
    seen: set[int] = set()
    stack = [sampler]
    while stack:
        s = stack.pop()
        if id(s) in seen:
            continue
        seen.add(id(s))
        yield s
        stack.extend(v for v in vars(s).values() if isinstance(v, BaseSampler))


def reseed(sampler: BaseSampler, seed: int, number: int, call: str) -> None:
    """Seed every random generator Optuna's samplers keep (``_rng``) in `sampler` and the
    samplers it holds from (seed, trial number, call): a draw no longer depends on the calls
    made before it (other trials', other processes')."""
    for s in _samplers(sampler):
        if isinstance(getattr(s, "_rng", None), LazyRandomState):
            rng = np.random.default_rng([seed, number, zlib.crc32(call.encode())])
            s._rng = LazyRandomState(int(rng.integers(2**32 - 1)))


class LaggedSampler(BaseSampler):
    """`inner` asked through the lagged view (`LaggedStudy`) of each trial, its generators
    seeded per trial and call (`reseed`).

    `waits`: a sampler asked for trial n before the trials below ``n - lag`` have finished
    (``study.optimize`` with threads) waits until they have, and until the window's trials hold
    all of `params` (asked in other threads, their params are being suggested); a driver that
    asks only when `blocked` says so leaves it False. Calls are serialized (one lock).
    """

    def __init__(
        self,
        inner: BaseSampler,
        lag: int,
        seed: int,
        *,
        settled: Settled = _never,
        params: Iterable[str] = (),
    ) -> None:
        self.inner, self.lag, self.seed, self.settled = inner, lag, seed, settled
        self.params = frozenset(params)
        self.waits = False
        self._lock = threading.RLock()

    def view(self, study: Study, trial: FrozenTrial) -> LaggedStudy:
        return LaggedStudy(study, trial.number, self.lag, self.settled)

    def _ready(self, study: Study, number: int) -> bool:
        trials = study.get_trials(deepcopy=False)
        if first_unfinished(trials, number - self.lag) is not None:
            return False
        return all(
            self.params <= t.params.keys()
            for t in trials
            if number - self.lag <= t.number < number and not t.state.is_finished()
        )

    def _await(self, study: Study, trial: FrozenTrial) -> None:
        if not self.waits or trial.number < history_from(self.inner, self.lag):
            return
        while not self._ready(study, trial.number):
            time.sleep(POLL_SECONDS)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        self._await(study, trial)
        with self._lock:
            return self.inner.infer_relative_search_space(self.view(study, trial), trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        with self._lock:
            reseed(self.inner, self.seed, trial.number, "relative")
            return self.inner.sample_relative(self.view(study, trial), trial, search_space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        with self._lock:
            reseed(self.inner, self.seed, trial.number, f"param:{param_name}")
            return self.inner.sample_independent(
                self.view(study, trial), trial, param_name, param_distribution
            )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        with self._lock:
            self.inner.before_trial(self.view(study, trial), trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Any,
    ) -> None:
        with self._lock:
            self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to do: every draw is seeded by its trial (Optuna's threads call this)."""

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
