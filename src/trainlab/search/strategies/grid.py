"""Grid search: evenly spaced points per axis, the lecture's counter-example (`GridSampler`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from trainlab.search.space import Dimension, Space
from trainlab.search.strategies.base import (
    GRID_ATTR,
    _set_attrs,
    _SpaceSampler,
)


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
