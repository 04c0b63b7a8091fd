"""Hyperparameter search in three parts beside the space, the config section and the API.

- `trainlab.search.space`: distribution strings -> `Space` of `Dimension`s; `apply_overrides`,
  `drop_unused`.
- `trainlab.search.config`: `SearchConfig`, `load_search_config`.
- `trainlab.search.optimize`: `optimize(objective, space, ...)` and the ask/tell `Search` over any
  objective (imports Optuna when first used); it uses strategies and study, never running.
- `trainlab.search.strategies`: pure samplers (no file or storage I/O): `make_sampler`,
  `make_pruner` (name -> builder tables over `trainlab.names`), the sampler classes, round
  barriers (`must_wait`).
- `trainlab.search.study`: the study's storage, lock, opening and resuming, the leaderboard and
  the budget used, rounds' boxes, artifacts, URLs as shown, and the plots (`study.plots` imports
  matplotlib): what the driver writes and the dashboard, ensemble and compare read.
- `trainlab.search.running`: `driver` (`search(config, **options)`, the driver that owns the
  study), `cooperate` (drivers sharing a study), `retest` (`--retest K`); the workers are
  `trainlab.experiments.executors`.
(The last three import Optuna and more: import them directly.)
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
