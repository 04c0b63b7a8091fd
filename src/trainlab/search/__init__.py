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
  the budget used, rounds' boxes, artifacts, URLs as shown, and the plots (`study.plots`, drawn
  with Pillow): what the driver writes and the dashboard, ensemble and compare read.
- `trainlab.search.running`: `driver` (`search(config, **options)`, the driver that owns the
  study), `cooperate` (drivers sharing a study), `retest` (`--retest K`); the workers are
  `trainlab.experiments.executors`.
(The last three import Optuna and more: import them directly.)
"""

from trainlab.lazy import exports

_WHERE = {
    **dict.fromkeys(("SearchConfig", "format_validation_error", "load_search_config"), "config"),
    **dict.fromkeys(
        (
            "Dimension",
            "Space",
            "apply_overrides",
            "drop_unused",
            "parse_distribution",
            "parse_space",
        ),
        "space",
    ),
    **dict.fromkeys(("optimize", "Search", "OptimizeResult"), "optimize"),
}
# every name loads on first use: `import trainlab.search.running.display` loads no Optuna or torch
__getattr__, __dir__ = exports(__name__, {k: f"trainlab.search.{m}" for k, m in _WHERE.items()})

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
