"""Block-coordinate search: tune one group of params at a time, holding the others."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial

from trainlab.errors import UserError
from trainlab.search.space import Space
from trainlab.search.strategies.base import (
    BLOCK_ATTR,
    PHASE_ATTR,
    _await_phase,
    _midpoint,
    _ranked,
    _set_attrs,
    _slot,
    _SpaceSampler,
)


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
