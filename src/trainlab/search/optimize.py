"""Search over any objective: ``optimize(objective, space)`` and the ask/tell `Search`.

A practitioner with their own training script gets the lecture's strategies without a trainlab
experiment config::

    from trainlab.search import optimize

    def objective(params):          # your own code; returns the value to maximize
        return -((math.log10(params["lr"]) + 2.5) ** 2) - (params["dropout"] - 0.2) ** 2

    result = optimize(objective, {"lr": "loguniform(1e-4, 1e-1)", "dropout": "uniform(0, 0.5)"},
                      strategy="coarse-to-fine", trials=30, seed=0)
    result.best_params, result.best_value, result.study

- ``space`` maps any parameter names to the config's distribution strings
  (`trainlab.search.space`); the objective receives config values (``beta``, not ``1 - beta``).
- The objective may take keyword arguments ``report`` and ``fidelity``:
  ``report(step, value) -> bool`` records an intermediate value (e.g. validation accuracy after
  epoch ``step``) and says whether the pruner stops the trial (True: return now; the trial is
  PRUNED whatever it returns); ``fidelity`` is the resource (e.g. epochs) the strategy gives this
  trial, from ``fidelity=(low, high)``: coarse-to-fine's rounds grow geometrically from low to
  high (short runs over wide ranges first), every other strategy gives ``high``.
- A value that is None or NaN, or an exception, marks the trial FAIL (the exception is raised
  again); a failed trial's slot goes to the next one.
- ``storage`` (an Optuna storage or URL, e.g. ``sqlite:///hpo.db``) with ``study`` (a name)
  makes the search resumable and shareable: ``trials`` is the study's total, so a second call
  (or a second process) continues to it.
- ``n_jobs`` > 1 runs trials in threads (``study.optimize``); the samplers' round barriers keep
  coarse-to-fine from zooming on an unfinished round.

The ask/tell form, for loops the user owns::

    search = Search(space, strategy="random", trials=20, direction="minimize")
    while search.remaining:
        number, params = search.ask()
        search.tell(number, my_loss(params))
    search.result()
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState
from pydantic import ValidationError

from trainlab.config import format_validation_error
from trainlab.errors import UserError, excerpt
from trainlab.search.config import SearchConfig, Strategy
from trainlab.search.samplers import (
    CoarseToFineSampler,
    make_pruner,
    make_sampler,
    must_wait,
    next_slot,
)
from trainlab.search.space import Dimension, Space, parse_distribution
from trainlab.search.study import open_storage

STRATEGIES: tuple[str, ...] = get_args(Strategy)
DIRECTIONS = ("maximize", "minimize")
PRUNERS = ("none", "median", "halving")


def objective_space(space: Mapping[str, str]) -> Space:
    """A `Space` over any parameter names; mistakes are one `UserError` line naming ``space``."""
    if not isinstance(space, Mapping) or not space:
        raise UserError(
            "space: give a dict of parameter names to distributions, "
            f'e.g. {{"lr": "loguniform(1e-4, 1e-1)"}}, got {excerpt(space)}'
        )
    dims = []
    for name, text in space.items():
        if not isinstance(name, str) or not name:
            raise UserError(f"space: parameter names must be non-empty strings, got {name!r}")
        try:
            dims.append(Dimension(name, parse_distribution(text)))
        except ValueError as exc:
            raise UserError(f"space[{name!r}]: {exc}") from None
    return Space(dims)


def fidelity_per_round(low: int, high: int, rounds: int) -> list[int]:
    """Geometric from `low` (round 0) to `high` (the last round): low * (high/low)^(r/(R-1))."""
    if rounds == 1:
        return [high]
    return [round(low * (high / low) ** (r / (rounds - 1))) for r in range(rounds)]


@dataclass
class OptimizeResult:
    """The best trial's params (config values) and value, and the Optuna study."""

    best_params: dict[str, Any] | None
    best_value: float | None
    best_number: int | None
    study: optuna.Study

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)


class Search:
    """A search over `space` whose trials the caller runs: `ask`, run, `tell`.

    Arguments as `optimize`; extra keyword arguments are strategy settings of the ``search:``
    config section (``rounds``, ``keep_top``, ``trials_per_round``, ``blocks``, ...).
    """

    def __init__(
        self,
        space: Mapping[str, str],
        strategy: str = "auto",
        trials: int = 50,
        *,
        storage: str | optuna.storages.BaseStorage | None = None,
        direction: str = "maximize",
        seed: int = 0,
        study: str | None = None,
        pruner: str | optuna.pruners.BasePruner = "none",
        fidelity: tuple[int, int] | None = None,
        **settings: Any,
    ) -> None:
        self.space = objective_space(space)
        if strategy not in STRATEGIES:
            raise UserError(f"strategy: must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        if direction not in DIRECTIONS:
            raise UserError(f"direction: must be 'maximize' or 'minimize', got {direction!r}")
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise UserError(f"trials: must be an integer >= 1, got {excerpt(trials)}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UserError(f"seed: must be an integer >= 0, got {excerpt(seed)}")
        custom_pruner = isinstance(pruner, optuna.pruners.BasePruner)
        if not custom_pruner and pruner not in PRUNERS:
            raise UserError(f"pruner: must be one of {', '.join(PRUNERS)} or an Optuna pruner")
        self.fidelity_range = _check_fidelity(fidelity)
        self.config = _search_config(
            strategy, trials, seed, "none" if custom_pruner else pruner, self.space, settings
        )
        if self.fidelity_range and self.config.epochs_per_round is None:
            per_round = fidelity_per_round(*self.fidelity_range, self.config.resolved_rounds())
            self.config = self.config.model_copy(update={"epochs_per_round": per_round})
        self.trials = trials
        self.sampler = make_sampler(self.config, self.space)
        self.pruner = pruner if custom_pruner else make_pruner(self.config)
        self.study = optuna.create_study(
            storage=_storage(storage),
            study_name=study,
            direction=direction,
            sampler=self.sampler,
            pruner=self.pruner,
            load_if_exists=study is not None,
        )
        self._asked: dict[int, Trial] = {}

    # -- budget

    @property
    def remaining(self) -> int:
        """Trials left to ask: ``trials`` minus the study's trials that did not fail."""
        return max(0, self.trials - next_slot(self.study))

    def can_ask(self) -> bool:
        """False while the next trial must wait for running trials of an earlier round."""
        return self.remaining > 0 and not must_wait(self.study, self.sampler)

    # -- ask / tell

    def ask(self) -> tuple[int, dict[str, Any]]:
        """The next trial's number and params (config values, by parameter name).

        Coarse-to-fine and block phases need the earlier phase's results: asking while trials
        of an earlier round are untold raises RuntimeError (tell them first; see `can_ask`).
        """
        if must_wait(self.study, self.sampler):
            raise RuntimeError(
                "the next trial starts a new round: tell the running trials of the previous "
                "round first (Search.can_ask() says when)"
            )
        trial = self.study.ask()
        params = self.space.suggest(trial)
        self._asked[trial.number] = trial
        return trial.number, params

    def fidelity(self, number: int) -> int | None:
        """The resource (e.g. epochs) this trial gets from ``fidelity=(low, high)``."""
        if self.fidelity_range is None:
            return None
        if isinstance(self.sampler, CoarseToFineSampler):
            return self.sampler.epochs_for_trial(self._trial(number))
        return self.fidelity_range[1]

    def report(self, number: int, step: int, value: float) -> bool:
        """Record an intermediate value; True when the pruner says to stop this trial."""
        trial = self._trial(number)
        trial.report(float(value), step)
        return bool(trial.should_prune())

    def tell(self, number: int, value: float | None, *, pruned: bool = False) -> None:
        """Finish a trial: its value, or PRUNED (`pruned`), or FAIL (None or NaN)."""
        trial = self._trial(number)
        self._asked.pop(number)
        if pruned:
            self.study.tell(trial, state=TrialState.PRUNED)
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, float(value))

    def _trial(self, number: int) -> Trial:
        if number not in self._asked:
            raise UserError(f"number: trial {number} was not asked by this Search or was told")
        return self._asked[number]

    # -- running an objective

    def run(self, objective: Callable[..., float], n_jobs: int = 1) -> OptimizeResult:
        """Run `objective` on the remaining trials (threads when `n_jobs` > 1)."""
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
            raise UserError(f"n_jobs: must be an integer >= 1, got {excerpt(n_jobs)}")
        wants = _keywords(objective)

        def run_trial(trial: Trial) -> float:
            params = self.space.suggest(trial)
            kwargs: dict[str, Any] = {}
            stop = {"pruned": False}
            if "report" in wants:

                def report(step: int, value: float) -> bool:
                    trial.report(float(value), step)
                    stop["pruned"] = stop["pruned"] or bool(trial.should_prune())
                    return stop["pruned"]

                kwargs["report"] = report
            if "fidelity" in wants:
                kwargs["fidelity"] = self._fidelity_of(trial)
            value = objective(params, **kwargs)
            if stop["pruned"]:
                raise optuna.TrialPruned()
            return float("nan") if value is None else value

        while self.remaining > 0:
            # failed trials give their slot back, so run until the budget is spent
            self.study.optimize(run_trial, n_trials=self.remaining, n_jobs=n_jobs, catch=())
        return self.result()

    def _fidelity_of(self, trial: Trial) -> int | None:
        if self.fidelity_range is None:
            return None
        if isinstance(self.sampler, CoarseToFineSampler):
            return self.sampler.epochs_for_trial(trial)
        return self.fidelity_range[1]

    def result(self) -> OptimizeResult:
        done = [t for t in self.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        if not done:
            return OptimizeResult(None, None, None, self.study)
        best = self.study.best_trial
        return OptimizeResult(
            self.space.config_values(best.params), best.value, best.number, self.study
        )


def optimize(
    objective: Callable[..., float],
    space: Mapping[str, str],
    strategy: str = "auto",
    trials: int = 50,
    *,
    storage: str | optuna.storages.BaseStorage | None = None,
    direction: str = "maximize",
    seed: int = 0,
    study: str | None = None,
    pruner: str | optuna.pruners.BasePruner = "none",
    fidelity: tuple[int, int] | None = None,
    n_jobs: int = 1,
    **settings: Any,
) -> OptimizeResult:
    """Search `space` for the params that maximize (or minimize) ``objective(params)``.

    See the module docstring for `space`, the objective's optional ``report`` and ``fidelity``
    keywords, `storage`/`study` and `n_jobs`; `settings` are the ``search:`` section's strategy
    settings (``rounds``, ``keep_top``, ...). Mistakes in the arguments raise one `UserError`
    line naming the argument. Same arguments and seed: the same trials.
    """
    if not callable(objective):
        raise UserError(f"objective: must be a function of params, got {excerpt(objective)}")
    search = Search(
        space,
        strategy,
        trials,
        storage=storage,
        direction=direction,
        seed=seed,
        study=study,
        pruner=pruner,
        fidelity=fidelity,
        **settings,
    )
    return search.run(objective, n_jobs=n_jobs)


# --------------------------------------------------------------------------- helpers


def _check_fidelity(fidelity: Any) -> tuple[int, int] | None:
    if fidelity is None:
        return None
    ok = (
        isinstance(fidelity, Sequence)
        and len(fidelity) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in fidelity)
        and 1 <= fidelity[0] <= fidelity[1]
    )
    if not ok:
        raise UserError(
            f"fidelity: must be (low, high) integers with 1 <= low <= high, got {excerpt(fidelity)}"
        )
    return int(fidelity[0]), int(fidelity[1])


def _search_config(
    strategy: str,
    trials: int,
    seed: int,
    pruner: str,
    space: Space,
    settings: Mapping[str, Any],
) -> SearchConfig:
    """The strategy settings, validated as the config's ``search:`` section (one line naming
    the setting)."""
    for key in ("space", "strategy", "trials", "seed", "pruner", "workers", "executor"):
        if key in settings:
            raise UserError(f"{key}: not a strategy setting here; pass it as optimize's argument")
    data = {
        "strategy": strategy,
        "trials": trials,
        "seed": seed,
        "pruner": pruner,
        "space": {d.name: str(d.spec) for d in space},
        **settings,
    }
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc)) from None


def _storage(storage: Any) -> Any:
    if storage is None or isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if not isinstance(storage, str):
        raise UserError(f"storage: must be a URL such as sqlite:///hpo.db, got {excerpt(storage)}")
    try:
        return open_storage(storage)
    except UserError as exc:
        raise UserError(str(exc).replace("--storage:", "storage:", 1)) from None


def _keywords(objective: Callable[..., Any]) -> set[str]:
    """Which of ``report`` and ``fidelity`` the objective accepts as keywords."""
    try:
        params = inspect.signature(objective).parameters.values()
    except (TypeError, ValueError):
        return set()
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params):
        return {"report", "fidelity"}
    return {p.name for p in params if p.name in ("report", "fidelity")}
