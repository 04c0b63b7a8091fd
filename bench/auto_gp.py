"""`auto` as it was before its own GP (issue 30), kept for bench/sampler_cost.py and
bench/hpo_tables.py to measure against in the same process: a Latin-hypercube start, then
Optuna's ``GPSampler`` (acquisition search cut to 512 points and 4 local searches, integers of
many values relaxed to continuous ranges; `OPTUNA_SETTINGS` restores Optuna's own, which is
`auto` as it was before issue 30), with de-duplication. Not used by the package."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from trainlab.search.space import (
    Dimension,
    Space,
    from_transformed,
    sample_value,
    to_transformed,
)
from trainlab.search.strategies.base import (
    _slot,
    _SpaceSampler,
    config_key,
    trial_rng,
)

# Optuna's own acquisition-search settings: `auto` before issue 30
OPTUNA_SETTINGS = {"RELAX_ABOVE": math.inf, "PRELIMINARY": 2048, "LOCAL_SEARCHES": 10}


class GPAutoSampler(_SpaceSampler):
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
    # What a proposal costs (issue 30; docs/search.md, "What auto costs"). Optuna's acquisition
    # search walks an integer of more than 16 values one point at a time (a Brent line search,
    # one GP evaluation per step, from every start): most of an ask's time on log-int widths and
    # batch sizes. The GP here sees such an integer as the continuous range its values own
    # (the same coordinates, so the same model); the proposal is rounded to the nearest value.
    # Then the acquisition search itself: `PRELIMINARY` random points, the best `LOCAL_SEARCHES`
    # of them (roulette-picked) polished by local search; Optuna's 2048 and 10 cost twice these
    # for no better rank on the dev tasks (at 5 seeds, mean rank 2.0 / 1.0 at 20 / 50 trials
    # against 2.5 / 1.0 before; 256 and 3 kept 2.5 / 1.0 but lost a little regret).
    RELAX_ABOVE = 16  # integers with more values than this are searched as continuous
    PRELIMINARY = 512  # random points the acquisition is evaluated at (Optuna: 2048)
    LOCAL_SEARCHES = 4  # of which the best few start a local search (Optuna: 10)

    def __init__(
        self, space: Space, seed: int = 0, *, startup: int = STARTUP, optuna_settings: bool = False
    ) -> None:
        super().__init__(space, seed)
        if optuna_settings:
            for name, value in OPTUNA_SETTINGS.items():
                setattr(self, name, value)
        self.startup = startup
        self.model = optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=self.startup, warn_independent_sampling=False
        )
        # GPSampler's own knobs of the acquisition search (attributes, not arguments)
        self.model._n_preliminary_samples = self.PRELIMINARY
        self.model._n_local_search = self.LOCAL_SEARCHES

    def _relaxed(self, dist: BaseDistribution) -> BaseDistribution:
        """An integer of many values as the continuous range its values own (half a step
        beyond each end, as Optuna's GP normalizes integers); anything else as it is."""
        if not isinstance(dist, IntDistribution):
            return dist
        if (dist.high - dist.low) // dist.step + 1 <= self.RELAX_ABOVE:
            return dist
        half = 0.5 * dist.step
        return FloatDistribution(dist.low - half, dist.high + half, log=dist.log)

    def _proposal(
        self, study: Study, trial: FrozenTrial, space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """The GP's proposal over `space`, relaxed integers rounded back to their values."""
        relaxed = {name: self._relaxed(dist) for name, dist in space.items()}
        proposed = self.model.sample_relative(study, trial, relaxed)
        return {
            name: from_transformed(space[name], to_transformed(space[name], value))
            if relaxed[name] is not space[name]
            else value
            for name, value in proposed.items()
        }

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
        proposed = self._proposal(study, trial, search_space)
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
