"""Hyperparameter search: the space, the ``search:`` config section, our Optuna samplers, plots.

- `trainlab.search.space`: distribution strings -> `Space` of `Dimension`s; `apply_overrides`,
  `drop_unused`.
- `trainlab.search.config`: `SearchConfig`, `load_search_config`.
- `trainlab.search.optimize`: `optimize(objective, space, ...)` and the ask/tell `Search` over any
  objective (imports Optuna when first used).
- `trainlab.search.strategies`: `make_sampler`, `make_pruner`, `boxes` and the sampler classes.
- `trainlab.search.study.plots`: `plot_params`, `plot_curves` (imports matplotlib).
- `trainlab.search.running.driver`: `search(config, **options)`, the driver that owns the study.
- `trainlab.experiments.executors`: local worker processes, Ray tasks, in-process.
- `trainlab.search.study`: storage, lock, resume checks, leaderboard.
- `trainlab.search.running.retest`: re-training the best configs with new seeds (`--retest K`).
(The last four import Optuna and more: import them directly.)
"""

from trainlab.search.config import SearchConfig, format_validation_error, load_search_config
from trainlab.search.space import (
    Dimension,
    Space,
    apply_overrides,
    drop_unused,
    parse_distribution,
    parse_space,
)

__all__ = [
    "Dimension",
    "Search",
    "SearchConfig",
    "Space",
    "apply_overrides",
    "drop_unused",
    "format_validation_error",
    "load_search_config",
    "optimize",
    "parse_distribution",
    "parse_space",
]


def __getattr__(name: str):
    """`optimize` and `Search` import Optuna and the samplers: loaded on first use."""
    if name in ("optimize", "Search", "OptimizeResult"):
        import importlib

        module = importlib.import_module("trainlab.search.optimize")
        # importing the submodule bound `optimize` to it here: the function takes the name back
        globals().update(optimize=module.optimize, Search=module.Search)
        globals()["OptimizeResult"] = module.OptimizeResult
        return globals()[name]
    raise AttributeError(f"module 'trainlab.search' has no attribute {name!r}")
