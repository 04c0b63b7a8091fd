"""What every one of our samplers shares: per-trial generators, slots, round barriers, the
random sampler, the space sampler the others build on, and the attributes they record.

Grid, random, coarse-to-fine and block-coordinate are `optuna.samplers.BaseSampler`s, so Optuna's
storages, pruners and dashboard work beside them; TPE is Optuna's own. Our samplers draw every
value from a generator seeded by ``(seed, trial.number, param name)``: the same study gives the
same values whatever the order trials finish in, a resumed study draws what an uninterrupted one
would have, and parallel workers never draw the same point. Everything is uniform in the
transformed space of `trainlab.search.space` (log10 for log scales, log10(1 - beta) for betas).

What the samplers record on each trial (Optuna system attrs are the sampler's, user attrs are
shown by the dashboard and ``trials_dataframe``):

- grid: system attr ``trainlab:grid_id`` (index of the grid point);
- coarse-to-fine: user attr ``round``, system attrs ``trainlab:round`` and ``trainlab:box`` (the
  box the trial was drawn from, in config values: ``{path: {"low", "high"} | {"choices"}}``);
- block: user attr ``block``, system attr ``trainlab:block``;
- coarse-to-fine and block: system attr ``trainlab:phase`` (the round, or the block phase).

Round barriers live here, so every driver gets them right (trainlab's search driver, Optuna's
``study.optimize(n_jobs=...)``, several processes on one storage, `trainlab.search.Search`):
a phased sampler (coarse-to-fine rounds, block phases) numbers each trial's *slot* (`_slot`)
and its phase (``phase_of_slot``); a trial of phase p may only be sampled once no trial of an
earlier phase is RUNNING, since its box (or held values) comes from those results. A driver asks
`must_wait(study, sampler)` before it asks for a trial; a sampler asked anyway (``study.optimize``
with threads) waits inside ``sample_relative`` until the earlier phase has finished.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from trainlab.search.space import Dimension, Space, sample_value

GRID_ATTR = "trainlab:grid_id"
ROUND_ATTR = "trainlab:round"
BOX_ATTR = "trainlab:box"
BLOCK_ATTR = "trainlab:block"
PHASE_ATTR = "trainlab:phase"
BARRIER_POLL_SECONDS = 0.02

Box = dict[str, tuple[Any, ...]]
"""Per dotted path: ``(low, high)`` in config values for numeric dims, the kept choices for
categorical ones (tell them apart with the space's `Dimension.is_categorical`)."""


# --------------------------------------------------------------------------- helpers


def trial_rng(seed: int, number: int, name: str) -> np.random.Generator:
    """The generator for one param of one trial: depends on nothing but its arguments."""
    return np.random.default_rng([seed, number, zlib.crc32(name.encode())])


def _check_single_objective(study: Study) -> None:
    if len(study.directions) != 1:
        raise ValueError("trainlab samplers support single-objective studies only")


def _slot(study: Study, trial: FrozenTrial) -> int:
    """How many earlier trials did not fail: the position of this trial in the budget.

    Failed trials (e.g. left RUNNING by a killed driver, marked FAIL on resume) give their slot
    to the next trial, so rounds and blocks keep their sizes.
    """
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.number < trial.number and t.state != TrialState.FAIL
    )


def _ranked(study: Study, trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """COMPLETE trials with a value, best first (ties: lower number first)."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
    return sorted(done, key=lambda t: (sign * t.value, t.number))


def _set_attrs(
    study: Study,
    trial: FrozenTrial,
    system: Mapping[str, Any],
    user: Mapping[str, Any] | None = None,
) -> None:
    for key, value in system.items():
        study._storage.set_trial_system_attr(trial._trial_id, key, value)
    for key, value in (user or {}).items():
        study._storage.set_trial_user_attr(trial._trial_id, key, value)


def _midpoint(dim: Dimension) -> Any:
    """Default Optuna value of a dimension: the middle of its transformed range, or choice 0."""
    if dim.is_categorical:
        return dim.choices[0]
    low, high = dim.transformed_bounds
    return dim.untransform((low + high) / 2)


# --------------------------------------------------------------------------- round barriers


def next_slot(study: Study) -> int:
    """The budget position of the next trial asked: trials that did not fail hold a slot."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state != TrialState.FAIL)


def _blocked(study: Study, phase: int | None, before: int | None = None) -> bool:
    """Whether a RUNNING trial (numbered below `before`, if given) is of a phase before `phase`.

    A trial asked but not yet sampled has no phase and blocks nothing.
    """
    if phase is None:
        return False
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if before is not None and t.number >= before:
            continue
        earlier = t.system_attrs.get(PHASE_ATTR)
        if earlier is not None and earlier < phase:
            return True
    return False


def must_wait(study: Study, sampler: BaseSampler) -> bool:
    """Whether the next trial must wait for running trials of an earlier round or block phase.

    Always False for samplers without phases (random, grid, Optuna's own).
    """
    phase_of_slot = getattr(sampler, "phase_of_slot", None)
    if phase_of_slot is None:
        return False
    return _blocked(study, phase_of_slot(next_slot(study)))


def _await_phase(study: Study, trial: FrozenTrial, phase: int) -> None:
    """Block until no earlier trial of an earlier phase is RUNNING (threads of one study, or
    processes sharing a storage; a dead process's trials are failed by its heartbeat)."""
    while _blocked(study, phase, before=trial.number):
        time.sleep(BARRIER_POLL_SECONDS)


# --------------------------------------------------------------------------- random


class RandomSampler(BaseSampler):
    """Random search: every param independently uniform in its transformed space.

    Unlike ``optuna.samplers.RandomSampler(seed)``, whose one generator hands the same sequence
    to every worker process, each value depends only on (seed, trial number, param name).
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def phase_of_slot(self, slot: int) -> int | None:
        """The phase of the trial in budget position `slot` (None: this sampler has none)."""
        return None

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return sample_value(param_distribution, trial_rng(self.seed, trial.number, param_name))


class _SpaceSampler(RandomSampler):
    """Samples the whole space at once (relative sampling); other params fall back to random."""

    def __init__(self, space: Space, seed: int = 0) -> None:
        super().__init__(seed)
        self.space = space

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        _check_single_objective(study)
        return self.space.distributions()

    def _draw(
        self, trial: FrozenTrial, dim: Dimension, box: Box | None = None, attempt: int = 0
    ) -> Any:
        """One Optuna value for `dim`, uniform in the box's part of the transformed space
        (`attempt` > 0: another independent draw, for `_new_draw`)."""
        name = dim.param_name if attempt == 0 else f"{dim.param_name}#{attempt}"
        rng = trial_rng(self.seed, trial.number, name)
        if box is None or dim.name not in box:
            return sample_value(dim.distribution, rng)
        if dim.is_categorical:
            return sample_value(dim.distribution, rng, choices=box[dim.name])
        low, high = sorted(dim.to_optuna_value(v) for v in box[dim.name])
        return sample_value(dim.distribution, rng, low, high)

    def _new_draw(
        self,
        study: Study,
        trial: FrozenTrial,
        fixed: Mapping[str, Any],
        box: Box | None = None,
        attempts: int = 32,
    ) -> dict[str, Any]:
        """Params: `fixed` (Optuna values) plus draws for the other dims, redrawn (up to
        `attempts` times) while the configuration equals one already tried or running; a box
        whose every point was tried gives a repeat."""
        seen = self._seen_keys(study, trial)
        params: dict[str, Any] = {}
        for attempt in range(attempts):
            params = {
                d.param_name: fixed[d.param_name]
                if d.param_name in fixed
                else self._draw(trial, d, box, attempt)
                for d in self.space
            }
            if config_key(self.space, params) not in seen:
                break
        return params

    def _seen_keys(self, study: Study, trial: FrozenTrial) -> set[tuple[Any, ...]]:
        """`config_key`s of the study's other trials that did not fail."""
        return {
            config_key(self.space, t.params)
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number and t.state != TrialState.FAIL
        }

    def _seen(self, study: Study, trial: FrozenTrial, params: Mapping[str, Any]) -> bool:
        return config_key(self.space, params) in self._seen_keys(study, trial)


def config_key(space: Space, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes two configurations the same: equal categorical and integer values, floats
    equal to 9 significant digits (in Optuna values)."""
    key: list[Any] = []
    for d in space:
        value = params.get(d.param_name)
        if isinstance(value, float) and not d.is_categorical:
            value = float(f"{value:.9g}")
        key.append(value)
    return tuple(key)


def box_from_json(data: Mapping[str, Any]) -> Box:
    """A box as recorded on a trial (`BOX_ATTR`, JSON) -> `Box`."""
    return {
        path: tuple(v["choices"]) if "choices" in v else (v["low"], v["high"])
        for path, v in data.items()
    }
