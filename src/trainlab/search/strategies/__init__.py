"""Our search strategies as Optuna samplers, and the pruners, built explicitly from the config.

Pure samplers: they read and annotate the study they are given, and open no file or storage.

- `base`: per-trial generators, slots and round barriers (`must_wait`), `RandomSampler`, the
  space sampler the others build on, `config_key`, and the attributes samplers record on trials;
- `grid`, `coarse_to_fine`, `block`, `auto`: one strategy each (TPE is Optuna's own);
- `pruners`: a coarse-to-fine trial judged within its round, a pruner's view of a study.

`SAMPLERS` and `PRUNERS` map every name of ``search.strategy`` and ``search.pruner``
(`trainlab.names`) to its builder, checked at import to cover exactly those names;
`make_sampler` and `make_pruner` look the config's names up there.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna
from optuna.samplers import BaseSampler

from trainlab import names
from trainlab.search.config import SearchConfig
from trainlab.search.space import Space
from trainlab.search.strategies.auto import AutoSampler
from trainlab.search.strategies.base import (
    BLOCK_ATTR,
    BOX_ATTR,
    GRID_ATTR,
    PHASE_ATTR,
    ROUND_ATTR,
    Box,
    RandomSampler,
    box_from_json,
    config_key,
    must_wait,
    next_slot,
    trial_rng,
)
from trainlab.search.strategies.block import BlockCoordinateSampler
from trainlab.search.strategies.coarse_to_fine import CoarseToFineSampler
from trainlab.search.strategies.grid import GridSampler, grid_axes
from trainlab.search.strategies.pruners import CompleteTrialsKept, SameRoundPruner

__all__ = [
    "BLOCK_ATTR",
    "BOX_ATTR",
    "GRID_ATTR",
    "PHASE_ATTR",
    "PRUNERS",
    "ROUND_ATTR",
    "SAMPLERS",
    "AutoSampler",
    "BlockCoordinateSampler",
    "Box",
    "CoarseToFineSampler",
    "CompleteTrialsKept",
    "GridSampler",
    "RandomSampler",
    "SameRoundPruner",
    "box_from_json",
    "config_key",
    "grid_axes",
    "make_pruner",
    "make_sampler",
    "must_wait",
    "next_slot",
    "trial_rng",
]

# --------------------------------------------------------------------------- samplers


def _auto(cfg: SearchConfig, space: Space, worker: int) -> BaseSampler:
    return AutoSampler(space, cfg.seed)


def _grid(cfg: SearchConfig, space: Space, worker: int) -> BaseSampler:
    return GridSampler(space, trials=cfg.trials, grid_points=cfg.grid_points, seed=cfg.seed)


def _random(cfg: SearchConfig, space: Space, worker: int) -> BaseSampler:
    return RandomSampler(seed=cfg.seed)


def _coarse_to_fine(cfg: SearchConfig, space: Space, worker: int) -> BaseSampler:
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


def _block(cfg: SearchConfig, space: Space, worker: int) -> BaseSampler:
    blocks = cfg.resolved_blocks(space.paths, {d.name: d.kind for d in space})
    return BlockCoordinateSampler(
        space, cfg.seed, blocks=blocks, trials_per_block=cfg.block_size(len(blocks))
    )


def _tpe(cfg: SearchConfig, space: Space, worker: int) -> BaseSampler:
    return optuna.samplers.TPESampler(
        seed=cfg.seed + worker,
        n_startup_trials=cfg.tpe_startup_trials,
        n_ei_candidates=24,
        multivariate=True,
        group=False,
        constant_liar=True,
    )


SamplerBuilder = Callable[[SearchConfig, Space, int], BaseSampler]

SAMPLERS: dict[str, SamplerBuilder] = names.covers(
    {
        "grid": _grid,
        "random": _random,
        "coarse-to-fine": _coarse_to_fine,
        "block": _block,
        "tpe": _tpe,
        "auto": _auto,
    },
    names.STRATEGIES,
    "search.strategy",
)


def make_sampler(cfg: SearchConfig, space: Space, *, worker: int = 0) -> BaseSampler:
    """The sampler of ``cfg.strategy``, built explicitly (Optuna 5 changed defaults).

    `worker` (0, 1, ...) offsets TPE's seed so parallel worker processes do not draw the same
    startup trials; our samplers need no offset (their draws depend on the trial number).
    """
    return SAMPLERS[cfg.strategy](cfg, space, worker)


# --------------------------------------------------------------------------- pruners


def _none(cfg: SearchConfig) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


def _median(cfg: SearchConfig) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(
        n_startup_trials=cfg.pruner_startup_trials,
        n_warmup_steps=cfg.pruner_warmup_epochs + 1,  # steps are 1-based epochs
        interval_steps=1,
        n_min_trials=1,
    )


def _halving(cfg: SearchConfig) -> optuna.pruners.BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=cfg.halving_min_epochs,
        reduction_factor=cfg.halving_reduction_factor,
        min_early_stopping_rate=0,
        bootstrap_count=0,
    )


PRUNERS: dict[str, Callable[[SearchConfig], optuna.pruners.BasePruner]] = names.covers(
    {"none": _none, "median": _median, "halving": _halving}, names.PRUNERS, "search.pruner"
)


def make_pruner(cfg: SearchConfig) -> optuna.pruners.BasePruner:
    """The pruner of ``cfg.pruner``, built explicitly.

    Trials report validation accuracy once per epoch with ``step`` = epochs done (1, 2, ...):
    ``trial.report(val_accuracy, step=epoch)``. The median pruner lets every trial run
    ``pruner_warmup_epochs`` epochs and waits for ``pruner_startup_trials`` complete trials;
    successive halving's first rung is at ``halving_min_epochs`` epochs. With coarse-to-fine,
    a trial is compared with its own round only (`SameRoundPruner`).
    """
    base = PRUNERS[cfg.pruner](cfg)
    if cfg.strategy == "coarse-to-fine" and not isinstance(base, optuna.pruners.NopPruner):
        return SameRoundPruner(base)
    return base
