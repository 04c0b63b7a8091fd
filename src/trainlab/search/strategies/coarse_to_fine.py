"""Coarse to fine: random search in a box that zooms, round by round, onto the best trials."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial

from trainlab.search.space import Space
from trainlab.search.strategies.base import (
    BOX_ATTR,
    PHASE_ATTR,
    ROUND_ATTR,
    Box,
    _await_phase,
    _ranked,
    _set_attrs,
    _slot,
    _SpaceSampler,
    box_from_json,
)


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
                return box_from_json(t.system_attrs[BOX_ATTR])
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
