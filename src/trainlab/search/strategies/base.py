"""Our search strategies as Optuna samplers, and the pruners, built explicitly from the config.

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

import copy
import math
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from trainlab.errors import UserError
from trainlab.search.config import SearchConfig
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


# --------------------------------------------------------------------------- grid


def grid_axes(space: Space, trials: int, grid_points: int | None = None) -> list[list[Any]]:
    """The grid's values (Optuna values) per dimension, in space order.

    Numeric dims get points spaced evenly in the transformed space, endpoints included (one point:
    the middle); categorical dims get all their choices. Without `grid_points`, numeric dims
    take turns growing by one point while the grid still fits in `trials` (9 trials and 2
    dimensions: 3 x 3; 8 trials: 4 x 2).
    """
    numeric = [d for d in space if not d.is_categorical]
    combos = math.prod(len(d.choices) for d in space if d.is_categorical)
    caps = [_distinct_values(d) for d in numeric]
    if grid_points is not None:
        counts = [min(grid_points, cap) for cap in caps]
    else:
        counts = [1] * len(numeric)
        grown = True
        while grown:
            grown = False
            for i in range(len(numeric)):
                size = combos * math.prod(counts) // counts[i] * (counts[i] + 1)
                if counts[i] < caps[i] and size <= trials:
                    counts[i] += 1
                    grown = True
    points = dict(zip((d.name for d in numeric), counts))
    return [list(d.choices) if d.is_categorical else _axis(d, points[d.name]) for d in space]


def _distinct_values(dim: Dimension) -> float:
    return dim.high - dim.low + 1 if dim.kind in ("int", "logint") else math.inf


def _axis(dim: Dimension, k: int) -> list[Any]:
    low, high = dim.transformed_bounds
    ts = [(low + high) / 2] if k == 1 else np.linspace(low, high, k).tolist()
    values: list[Any] = []
    for t in ts:
        v = dim.untransform(t)
        if v not in values:
            values.append(v)
    return values


class GridSampler(_SpaceSampler):
    """Grid search, the lecture's counter-example: evenly spaced points on each axis.

    Trial n takes grid point n; a point whose trial failed is handed to the next trial, so a
    killed driver's slots are re-run. Two places where a fixed grid would waste the budget use
    the seed instead: a numeric axis the budget cannot grow past one point is not held at its
    middle but drawn at random per trial (so 100 trials over 9 dimensions still vary all 9),
    and trials past the grid's size draw random configurations not tried yet, rather than
    re-running the grid (cycling it only once every configuration has been tried).
    """

    def __init__(
        self, space: Space, trials: int, grid_points: int | None = None, seed: int = 0
    ) -> None:
        super().__init__(space, seed)
        self.axes = grid_axes(space, trials, grid_points)
        self.size = math.prod(len(a) for a in self.axes)
        self.random_axes = {
            d.param_name
            for d, axis in zip(space, self.axes)
            if not d.is_categorical and len(axis) == 1 and _distinct_values(d) > 1
        }

    def point(self, index: int) -> dict[str, Any]:
        """Optuna params of grid point `index` (mixed radix, last dimension fastest)."""
        values: list[Any] = []
        for axis in reversed(self.axes):
            index, digit = divmod(index, len(axis))
            values.append(axis[digit])
        return {d.param_name: v for d, v in zip(self.space, reversed(values))}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        covered = {
            t.system_attrs[GRID_ATTR]
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number
            and t.state != TrialState.FAIL
            and GRID_ATTR in t.system_attrs
        }
        if len(covered) >= self.size:
            params = self._new_draw(study, trial, {})
            if not self._seen(study, trial, params):
                return params
            index = trial.number % self.size  # every configuration tried: cycle the grid
        else:
            index = trial.number if trial.number < self.size else self.size
            if index in covered or index >= self.size:
                index = min(set(range(self.size)) - covered)
        _set_attrs(study, trial, {GRID_ATTR: index})
        point = self.point(index)
        for d in self.space:
            if d.param_name in self.random_axes:
                point[d.param_name] = self._draw(trial, d)
        return point


# --------------------------------------------------------------------------- coarse to fine


class CoarseToFineSampler(_SpaceSampler):
    """Coarse to fine: random search in a box that zooms, round by round, onto the best trials.

    Round 0's box is the whole space. Round r+1's box bounds the `keep_top` best COMPLETE trials
    of round r in the transformed space, widened by `margin` x its width on each side (and to at
    least `min_width` x the full range), clipped to the space; categorical dims keep the choices
    seen among those trials. A round's box is computed by its first trial and reused by the rest.
    If round r has no complete trial yet (all pruned, failed or running), round r+1 reuses r's
    box. Trials past ``rounds x trials_per_round`` stay in the last round.
    """

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        *,
        rounds: int = 3,
        trials_per_round: int = 10,
        keep_top: int = 3,
        epochs_per_round: Sequence[int] | None = None,
        margin: float = 0.25,
        min_width: float = 0.1,
    ) -> None:
        super().__init__(space, seed)
        if epochs_per_round is not None and len(epochs_per_round) != rounds:
            raise ValueError("epochs_per_round needs one entry per round")
        self.rounds = rounds
        self.trials_per_round = trials_per_round
        self.keep_top = keep_top
        self.epochs_per_round = list(epochs_per_round) if epochs_per_round else None
        self.margin = margin
        self.min_width = min_width
        self._round_of_number: dict[int, int] = {}

    # -- rounds

    def phase_of_slot(self, slot: int) -> int:
        """The round of the trial in budget position `slot` (past the last: the last)."""
        return min(self.rounds - 1, slot // self.trials_per_round)

    def round_of(self, trial: optuna.trial.Trial | FrozenTrial | int) -> int:
        """The round a trial belongs to (sampled trials: the recorded one)."""
        attrs: Mapping[str, Any] = {}
        if isinstance(trial, optuna.trial.Trial):
            trial.relative_params  # noqa: B018 (runs the sampler, which records the round)
            attrs = trial.storage.get_trial_system_attrs(trial._trial_id)
        elif isinstance(trial, FrozenTrial):
            attrs = trial.system_attrs
        number = trial if isinstance(trial, int) else trial.number
        if ROUND_ATTR in attrs:
            return int(attrs[ROUND_ATTR])
        if number in self._round_of_number:
            return self._round_of_number[number]
        return min(self.rounds - 1, number // self.trials_per_round)

    def epochs_for_round(self, round_index: int) -> int | None:
        """Epochs a trial of this round trains for (None: the experiment config's own)."""
        return self.epochs_per_round[round_index] if self.epochs_per_round else None

    def epochs_for_trial(self, trial: optuna.trial.Trial | FrozenTrial | int) -> int | None:
        """Epochs for this trial: later rounds can train longer (``epochs_per_round``)."""
        return self.epochs_for_round(self.round_of(trial))

    # -- boxes

    def full_box(self) -> Box:
        """Round 0's box: the whole space, in config values."""
        return {
            d.name: tuple(d.choices) if d.is_categorical else (d.low, d.high) for d in self.space
        }

    def zoom(self, top: Sequence[Mapping[str, Any]]) -> Box:
        """The box around the Optuna params of the best trials (see the class docstring)."""
        box = self.full_box()
        for dim in self.space:
            values = [p[dim.param_name] for p in top if dim.param_name in p]
            if not values:
                continue
            if dim.is_categorical:
                box[dim.name] = tuple(c for c in dim.choices if c in values)
                continue
            ts = [dim.transform(v) for v in values]
            full_low, full_high = dim.transformed_bounds
            pad = max(
                self.margin * (max(ts) - min(ts)), self.min_width * (full_high - full_low) / 2
            )
            low = max(full_low, min(ts) - pad)
            high = min(full_high, max(ts) + pad)
            ends = sorted(dim.to_config_value(dim.untransform(t)) for t in (low, high))
            box[dim.name] = (ends[0], ends[1])
        return box

    def box_for_round(self, study: Study, round_index: int) -> Box:
        """The box of a round: recorded by one of its trials, else computed from round r-1."""
        if round_index == 0:
            return self.full_box()
        trials = study.get_trials(deepcopy=False)
        for t in trials:
            if t.system_attrs.get(ROUND_ATTR) == round_index and BOX_ATTR in t.system_attrs:
                return _box_from_json(t.system_attrs[BOX_ATTR])
        previous = [t for t in trials if t.system_attrs.get(ROUND_ATTR) == round_index - 1]
        top = _ranked(study, previous)[: self.keep_top]
        if not top:
            return self.box_for_round(study, round_index - 1)
        return self.zoom([t.params for t in top])

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        round_index = self.phase_of_slot(_slot(study, trial))
        _await_phase(study, trial, round_index)
        box = self.box_for_round(study, round_index)
        self._round_of_number[trial.number] = round_index
        _set_attrs(
            study,
            trial,
            {
                ROUND_ATTR: round_index,
                PHASE_ATTR: round_index,
                BOX_ATTR: _box_to_json(box, self.space),
            },
            {"round": round_index},
        )
        return self._new_draw(study, trial, {}, box)


def _box_to_json(box: Box, space: Space) -> dict[str, Any]:
    return {
        path: {"choices": list(v)} if space[path].is_categorical else {"low": v[0], "high": v[1]}
        for path, v in box.items()
    }


def _box_from_json(data: Mapping[str, Any]) -> Box:
    return {
        path: tuple(v["choices"]) if "choices" in v else (v["low"], v["high"])
        for path, v in data.items()
    }


def boxes(study: Study) -> list[Box]:
    """Coarse-to-fine boxes per round (index = round), as recorded on the trials.

    Numeric dims map to ``(low, high)`` in config values (beta, not 1 - beta); categorical dims
    to the kept choices. Empty for studies not run by `CoarseToFineSampler`.
    """
    found: dict[int, Box] = {}
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        r = t.system_attrs.get(ROUND_ATTR)
        if r is not None and r not in found and BOX_ATTR in t.system_attrs:
            found[int(r)] = _box_from_json(t.system_attrs[BOX_ATTR])
    return [found.get(r, {}) for r in range(max(found) + 1)] if found else []


# --------------------------------------------------------------------------- block coordinate


class BlockCoordinateSampler(_SpaceSampler):
    """Block-coordinate search: tune one group of params at a time, holding the others.

    Trials come in phases of `trials_per_block`; phase p tunes block ``p % len(blocks)`` (random
    in its full range) while every other param is held at the best COMPLETE trial's value so
    far, or, before any trial completed, at the middle of its transformed range (first choice
    for categoricals).
    """

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        *,
        blocks: Sequence[Sequence[str]],
        trials_per_block: int,
    ) -> None:
        super().__init__(space, seed)
        listed = [p for block in blocks for p in block]
        for path in listed:
            if path not in space:
                raise UserError(f"search.blocks: {path} is not in search.space")
        missing = [p for p in space.paths if p not in listed]
        self.blocks = [list(b) for b in blocks if b] + ([missing] if missing else [])
        self.trials_per_block = trials_per_block

    def phase_of_slot(self, slot: int) -> int:
        """The block phase of the trial in budget position `slot` (phases cycle the blocks)."""
        return slot // self.trials_per_block

    def block_of_slot(self, slot: int) -> int:
        return self.phase_of_slot(slot) % len(self.blocks)

    def held_values(self, study: Study) -> dict[str, Any]:
        """Optuna params the non-tuned dims are held at: the best trial's, else the defaults."""
        held = {d.param_name: _midpoint(d) for d in self.space}
        ranked = _ranked(study, study.get_trials(deepcopy=False))
        if ranked:
            best = ranked[0]
            for d in self.space:
                value = best.params.get(d.param_name)
                if value is not None and d.distribution._contains(
                    d.distribution.to_internal_repr(value)
                ):
                    held[d.param_name] = value
        return held

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        slot = _slot(study, trial)
        phase = self.phase_of_slot(slot)
        _await_phase(study, trial, phase)
        block = self.block_of_slot(slot)
        tuned = set(self.blocks[block])
        held = {
            k: v
            for k, v in self.held_values(study).items()
            if self.space.by_param[k].name not in tuned
        }
        params = self._new_draw(study, trial, held)
        _set_attrs(study, trial, {BLOCK_ATTR: block, PHASE_ATTR: phase}, {"block": block})
        return params


# --------------------------------------------------------------------------- auto


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


class AutoSampler(_SpaceSampler):
    """``strategy: auto``, the default: a space-filling start, then a model of the results.

    1. The first `startup` trials (default `STARTUP`, 5) form a Latin hypercube in the
       transformed space: each dimension's range is cut into `startup` equal strata and every
       stratum is used once (a seeded permutation per dimension), so a small budget already
       sees every part of every range, unlike both grid (few values per axis) and independent
       random draws (clumps and gaps).
    2. Later trials are proposed by Optuna's Gaussian-process sampler (``GPSampler``: a GP fit
       to the complete trials in the same transformed space, expected improvement maximized,
       running trials accounted for), which places the search where the results say the optimum
       is, the model-based form of "coarse to fine".
    3. A proposal equal to a configuration already tried or running (`config_key`), or within
       2% of every range of a pruned (e.g. diverged) or running trial, which the GP does not
       model, is replaced by a random draw that is new (up to 32 attempts): the budget never
       pays twice for one point, which matters on integer and categorical dimensions.

    Every draw depends only on (seed, trial slot, param) and the results, like the other
    samplers; the GP's own optimizer is seeded by `seed`.
    """

    NEAR = 0.02  # fraction of a range within which two values count as the same point
    # trials of the space-filling start: 5 ranked first at 20 and 50 evaluations on the dev
    # tasks and level first at 100, ahead of len(space) + 1 capped at 10 (docs/search.md,
    # the table of the start)
    STARTUP = 5

    def __init__(self, space: Space, seed: int = 0, *, startup: int = STARTUP) -> None:
        super().__init__(space, seed)
        self.startup = startup
        self.model = optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=self.startup, warn_independent_sampling=False
        )

    def _stratified(self, dim: Dimension, slot: int, trial: FrozenTrial) -> Any:
        """Slot `slot`'s Latin-hypercube value of `dim` (its stratum, uniform inside it)."""
        n = self.startup
        order = np.random.default_rng([self.seed, 7919, zlib.crc32(dim.param_name.encode())])
        stratum = int(order.permutation(n)[slot])
        u = float(trial_rng(self.seed, trial.number, dim.param_name).uniform())
        if dim.is_categorical:
            return dim.choices[int((stratum + u) / n * len(dim.choices))]
        dist = dim.distribution
        half = 0.5 if isinstance(dist, optuna.distributions.IntDistribution) else 0.0
        low, high = (dim.transform(v) for v in (dist.low - half, dist.high + half))
        value = dim.untransform(low + (stratum + u) / n * (high - low))
        return min(max(value, dist.low), dist.high)

    def _near(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        """Same choices, and every numeric value within `NEAR` of its range (transformed)."""
        for d in self.space:
            x, y = a.get(d.param_name), b.get(d.param_name)
            if x is None or y is None:
                return False
            if d.is_categorical:
                if x != y:
                    return False
                continue
            low, high = d.transformed_bounds
            if abs(d.transform(x) - d.transform(y)) > self.NEAR * (high - low):
                return False
        return True

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        slot = _slot(study, trial)
        if slot < self.startup:
            return {d.param_name: self._stratified(d, slot, trial) for d in self.space}
        proposed = self.model.sample_relative(study, trial, search_space)
        params = {
            d.param_name: proposed[d.param_name]
            if d.param_name in proposed
            else self._draw(trial, d)
            for d in self.space
        }
        others = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number and t.state != TrialState.FAIL
        ]
        seen = {config_key(self.space, t.params) for t in others}
        # the GP models COMPLETE trials only: near a pruned (e.g. diverged) or running trial it
        # would propose the same point again and again
        unmodelled = [t.params for t in others if t.state != TrialState.COMPLETE]
        for attempt in range(32):
            if config_key(self.space, params) not in seen and not any(
                self._near(params, other) for other in unmodelled
            ):
                break
            rng_name = f"#{attempt}"
            params = {
                d.param_name: sample_value(
                    d.distribution, trial_rng(self.seed, trial.number, d.param_name + rng_name)
                )
                for d in self.space
            }
        return params


# --------------------------------------------------------------------------- factories


def make_sampler(cfg: SearchConfig, space: Space, *, worker: int = 0) -> BaseSampler:
    """The sampler of ``cfg.strategy``, built explicitly (Optuna 5 changed defaults).

    `worker` (0, 1, ...) offsets TPE's seed so parallel worker processes do not draw the same
    startup trials; our samplers need no offset (their draws depend on the trial number).
    """
    if cfg.strategy == "auto":
        return AutoSampler(space, cfg.seed)
    if cfg.strategy == "random":
        return RandomSampler(seed=cfg.seed)
    if cfg.strategy == "grid":
        return GridSampler(space, trials=cfg.trials, grid_points=cfg.grid_points, seed=cfg.seed)
    if cfg.strategy == "coarse-to-fine":
        return CoarseToFineSampler(
            space,
            cfg.seed,
            rounds=cfg.resolved_rounds(),
            trials_per_round=cfg.round_size(),
            keep_top=cfg.resolved_keep_top(),
            epochs_per_round=cfg.epochs_per_round,
            margin=cfg.zoom_margin,
            min_width=cfg.zoom_min_width,
        )
    if cfg.strategy == "block":
        blocks = cfg.resolved_blocks(space.paths, {d.name: d.kind for d in space})
        return BlockCoordinateSampler(
            space, cfg.seed, blocks=blocks, trials_per_block=cfg.block_size(len(blocks))
        )
    if cfg.strategy == "tpe":
        return optuna.samplers.TPESampler(
            seed=cfg.seed + worker,
            n_startup_trials=cfg.tpe_startup_trials,
            n_ei_candidates=24,
            multivariate=True,
            group=False,
            constant_liar=True,
        )
    raise UserError(f"search.strategy: unknown strategy {cfg.strategy!r}")


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


def make_pruner(cfg: SearchConfig) -> optuna.pruners.BasePruner:
    """The pruner of ``cfg.pruner``, built explicitly.

    Trials report validation accuracy once per epoch with ``step`` = epochs done (1, 2, ...):
    ``trial.report(val_accuracy, step=epoch)``. The median pruner lets every trial run
    ``pruner_warmup_epochs`` epochs and waits for ``pruner_startup_trials`` complete trials;
    successive halving's first rung is at ``halving_min_epochs`` epochs. With coarse-to-fine,
    a trial is compared with its own round only (`SameRoundPruner`).
    """
    base = _base_pruner(cfg)
    if cfg.strategy == "coarse-to-fine" and not isinstance(base, optuna.pruners.NopPruner):
        return SameRoundPruner(base)
    return base


def _base_pruner(cfg: SearchConfig) -> optuna.pruners.BasePruner:
    if cfg.pruner == "none":
        return optuna.pruners.NopPruner()
    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.pruner_startup_trials,
            n_warmup_steps=cfg.pruner_warmup_epochs + 1,  # steps are 1-based epochs
            interval_steps=1,
            n_min_trials=1,
        )
    if cfg.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=cfg.halving_min_epochs,
            reduction_factor=cfg.halving_reduction_factor,
            min_early_stopping_rate=0,
            bootstrap_count=0,
        )
    raise UserError(f"search.pruner: unknown pruner {cfg.pruner!r}")
