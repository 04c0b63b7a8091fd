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
  again); a failed trial counts toward ``trials`` (as in `trainlab search`), so an objective that
  always fails ends.
- ``storage`` (an Optuna storage or URL, e.g. ``sqlite:///hpo.db``) with ``study`` (a name)
  makes the search resumable and shareable: ``trials`` is the study's total, so a second call
  (or a second process) continues to it.
- ``n_jobs`` > 1 runs trials in threads (``study.optimize``); the samplers' round barriers keep
  coarse-to-fine from zooming on an unfinished round.
- ``lag`` (a strategy setting, default `SearchConfig.lag`): trial n is proposed (auto, tpe) and
  pruned from the trials numbered below n - lag only (`trainlab.search.strategies.lagged`), so
  threads, processes and workers give the same trials as one loop with the same lag; an ask
  waits (a thread) or is refused (`Search.ask`) until those trials are told.

The ask/tell form, for loops the user owns::

    search = Search(space, strategy="random", trials=20, direction="minimize")
    while search.remaining:
        number, params = search.ask()
        search.tell(number, my_loss(params))
    search.result()
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState
from pydantic import ValidationError

from trainlab import names
from trainlab.config import format_validation_error
from trainlab.errors import UserError, excerpt
from trainlab.report.progress import View, open_view
from trainlab.search.config import SearchConfig
from trainlab.search.space import Dimension, Space, parse_distribution
from trainlab.search.strategies import (
    CoarseToFineSampler,
    CompleteTrialsKept,
    make_pruner,
    make_sampler,
    must_wait,
)
from trainlab.search.strategies.lagged import (
    POLL_SECONDS,
    LaggedSampler,
    LaggedStudy,
    blocked,
    first_unfinished,
    history_from,
    reads_history,
)
from trainlab.search.strategies.pruners import FrozenView, LocalPruning, judges_alone
from trainlab.search.study import INTERRUPTED, OUTCOME, counted, open_storage, optuna_info_hidden

STRATEGIES = names.STRATEGIES
DIRECTIONS = names.DIRECTIONS
PRUNERS = names.PRUNERS


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
    `trainlab search` drives its trials through the same object (`Search.over`).

    The lag (setting ``lag``, default `SearchConfig.lag`): `auto` and `tpe` propose, and the
    pruner judges, trial n from the trials numbered below n - lag only; `ask` is refused (and
    `can_ask` False) until those are told (`waits_for` names the one to tell).

    The budget: every trial asked counts toward ``trials`` except those a stopped process left
    unfinished (FAIL with outcome ``interrupted``, re-run); a FAIL (an exception, None or NaN)
    counts too, so an objective that always fails ends after ``trials`` attempts.
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
        parsed = objective_space(space)
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
        fidelity_range = _check_fidelity(fidelity)
        config = _search_config(
            strategy, trials, seed, "none" if custom_pruner else pruner, parsed, settings
        )
        if fidelity_range and config.epochs_per_round is None:
            per_round = fidelity_per_round(*fidelity_range, config.resolved_rounds())
            config = config.model_copy(update={"epochs_per_round": per_round})
        opened = optuna.create_study(
            storage=_storage(storage),
            study_name=study,
            direction=direction,
            sampler=make_sampler(config, parsed),
            pruner=pruner if custom_pruner else make_pruner(config),
            load_if_exists=study is not None,
        )
        # only this process writes an in-memory study: the pruner's view may be kept
        self._setup(opened, parsed, config, fidelity_range, exclusive=storage is None)

    @classmethod
    def over(cls, study: optuna.Study, space: Space, config: SearchConfig, *, exclusive: bool):
        """A Search on a `study` already opened with the config's sampler and pruner (the
        `trainlab search` driver). `exclusive`: no other process writes the study, so the
        pruner's list of complete trials is read once per finished trial (`CompleteTrialsKept`)
        instead of once per report."""
        search = cls.__new__(cls)
        search._setup(study, space, config, None, exclusive=exclusive)
        return search

    def _setup(
        self,
        study: optuna.Study,
        space: Space,
        config: SearchConfig,
        fidelity_range: tuple[int, int] | None,
        *,
        exclusive: bool,
    ) -> None:
        self.study, self.space, self.config = study, space, config
        self.trials = config.trials
        self.fidelity_range = fidelity_range
        self.asked: dict[int, Trial] = {}  # trials asked and not yet told, by number
        self._kept = CompleteTrialsKept(study) if exclusive else None
        self.lag = config.lag
        if reads_history(study.sampler) and not isinstance(study.sampler, LaggedSampler):
            study.sampler = LaggedSampler(
                study.sampler,
                config.lag,
                config.seed,
                settled=_settled,
                params=[d.param_name for d in space],
            )

    @property
    def sampler(self) -> optuna.samplers.BaseSampler:
        return self.study.sampler

    @property
    def pruner(self) -> optuna.pruners.BasePruner:
        return self.study.pruner

    # -- budget

    @property
    def used(self) -> int:
        """Trials that count toward the budget (this process's and any other's)."""
        return counted(self.study)

    @property
    def remaining(self) -> int:
        """Trials left to ask: ``trials`` minus `used`."""
        return max(0, self.trials - self.used)

    def can_ask(self) -> bool:
        """False when the budget is spent, or while the next trial must wait for running trials
        of an earlier round (its box comes from their results; `strategies.must_wait`), or for
        running trials numbered below its number minus ``lag`` (its proposal or pruning reads
        them: `waits_for`)."""
        return self.held_by() is None

    def held_by(self) -> str | None:
        """Why the next trial may not be asked now: ``"budget"`` (spent), ``"round"`` (an
        earlier round must finish first) or ``"lag"`` (a trial it reads must finish first:
        `waits_for`); None when it may (`can_ask`)."""
        if self.remaining <= 0:
            return "budget"
        if must_wait(self.study, self.sampler):
            return "round"
        if self.waits_for() is not None:
            return "lag"
        return None

    def reads_results(self) -> bool:
        """Whether the sampler or the pruner reads other trials' results (then the lag holds
        back trials: at most ``lag + 1`` run at once once they do)."""
        return any(
            history_from(reader, self.lag) != float("inf") for reader in (self.sampler, self.pruner)
        )

    def waits_for(self) -> int | None:
        """The running trial the next ask waits for: the next trial n reads the trials numbered
        below n - ``lag`` (when the sampler or the pruner reads results at all), so they must
        have finished; None when it may be asked now."""
        return blocked(self.study, self.lag, (self.sampler, self.pruner))

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
        if (running := self.waits_for()) is not None:
            raise RuntimeError(
                f"the next trial is proposed from the trials numbered below its own minus "
                f"lag={self.lag}: tell trial {running} first (Search.can_ask() says when)"
            )
        trial = self.study.ask()
        params = self.space.suggest(trial)
        self.asked[trial.number] = trial
        return trial.number, params

    def fidelity(self, number: int) -> int | None:
        """The resource (e.g. epochs) this trial gets: coarse-to-fine's round's
        (``epochs_per_round``, or geometric over ``fidelity=(low, high)``), else ``high``
        (None without either: the objective's own)."""
        return self._fidelity_of(self.trial(number))

    def report(self, number: int, step: int, value: float) -> bool:
        """Record an intermediate value; True when the pruner says to stop this trial."""
        self.record(number, step, value)
        return self._prunes(self.trial(number))

    def record(self, number: int, step: int, value: float) -> None:
        """Record an intermediate value without asking the pruner (it was asked where the trial
        runs: `local_pruning`)."""
        self.trial(number).report(float(value), step)

    def local_pruning(self, number: int, last_step: float = math.inf) -> LocalPruning | None:
        """Trial `number`'s pruning as an object its worker runs alone (`LocalPruning`: the
        same answers as `report`, epoch for epoch, without asking this process), or None when
        `report` must be asked: the pruner writes to the storage or may read more than the
        complete trials (`judges_alone`: successive halving, a pruner of the user's own), the
        study has several objectives, or the trial's view may still change: a trial below
        ``number - lag`` is unfinished (its result would enter the view later) and the trial
        is not one the pruner judges before it has its start-up trials (`history_from`: those
        views hold too few complete trials to prune, whatever finishes). `last_step`: the
        trial's last epoch (never stopped there)."""
        pruner = self.pruner
        if not judges_alone(pruner) or len(self.study.directions) > 1:
            return None
        if number >= history_from(pruner, self.lag):
            below = number - self.lag
            if first_unfinished(self.study.get_trials(deepcopy=False), below) is not None:
                return None
        study = self.study if self._kept is None else self._kept
        view = LaggedStudy(study, number, self.lag, _settled)
        complete = view.get_trials(deepcopy=True, states=(TrialState.COMPLETE,))
        trial = copy.deepcopy(self.trial(number)._get_latest_trial())
        return LocalPruning(pruner, FrozenView(self.study.direction, complete), trial, last_step)

    def tell(self, number: int, value: float | None, *, pruned: bool = False) -> None:
        """Finish a trial: its value, or PRUNED (`pruned`), or FAIL (None or NaN)."""
        trial = self.trial(number)
        self.asked.pop(number)
        if self._kept is not None:
            self._kept.forget()
        if pruned:
            self.study.tell(trial, state=TrialState.PRUNED)
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, float(value))

    def trial(self, number: int) -> Trial:
        """The Optuna trial of an asked, untold trial (to set user attributes, say)."""
        if number not in self.asked:
            raise UserError(f"number: trial {number} was not asked by this Search or was told")
        return self.asked[number]

    def drop(self, number: int) -> None:
        """Forget an asked trial without telling it (another process finishes it)."""
        self.asked.pop(number, None)

    # -- running an objective

    def run(
        self, objective: Callable[..., float], n_jobs: int = 1, view: View | None = None
    ) -> OptimizeResult:
        """Run `objective` on the remaining trials (threads when `n_jobs` > 1); `view`
        (trainlab.report.progress) moves one step per finished trial."""
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
            raise UserError(f"n_jobs: must be an integer >= 1, got {excerpt(n_jobs)}")
        wants = _keywords(objective)
        threads = n_jobs > 1
        if threads:  # threads tell between another's reports: read the study as it is
            self._kept = None

        def run_trial(trial: Trial) -> float:
            params = self.space.suggest(trial)
            if threads:  # its pruning reads the trials below number - lag: let them finish
                self._await_lagged(trial.number)
            kwargs: dict[str, Any] = {}
            stop = {"pruned": False}
            if "report" in wants:

                def report(step: int, value: float) -> bool:
                    trial.report(float(value), step)
                    stop["pruned"] = stop["pruned"] or self._prunes(trial)
                    return stop["pruned"]

                kwargs["report"] = report
            if "fidelity" in wants:
                kwargs["fidelity"] = self._fidelity_of(trial)
            value = objective(params, **kwargs)
            if stop["pruned"]:
                raise optuna.TrialPruned()
            return float("nan") if value is None else value

        def finished(study: optuna.Study, trial: FrozenTrial) -> None:
            if self._kept is not None:
                self._kept.forget()
            used = self.used
            if view is not None:
                view.update(used, self._best_line(), record=_trial_record(trial), total=self.trials)
            if used >= self.trials:  # other processes on a shared study spent it too
                study.stop()

        if threads and isinstance(self.sampler, LaggedSampler):
            self.sampler.waits = True  # asked in a thread: wait for the lagged trials there
        if self.remaining > 0:
            with optuna_info_hidden():  # the view shows the trials (or nothing: verbose=False)
                if view is not None:
                    view.start()
                    view.update(self.used, self._best_line(), total=self.trials)
                try:
                    self.study.optimize(
                        run_trial,
                        n_trials=self.remaining,
                        n_jobs=n_jobs,
                        catch=(),
                        callbacks=[finished],
                    )
                finally:
                    if isinstance(self.sampler, LaggedSampler):
                        self.sampler.waits = False
        return self.result()

    def _await_lagged(self, number: int) -> None:
        """Threads: wait until the trials below `number` - lag have finished, when the pruner
        reads them (the sampler waited already when it reads them)."""
        if isinstance(self.pruner, optuna.pruners.NopPruner):
            return
        below = number - self.lag
        while first_unfinished(self.study.get_trials(deepcopy=False), below) is not None:
            time.sleep(POLL_SECONDS)

    def _best_line(self) -> str:
        """The best complete trial so far, as a progress view's status."""
        best = self.result()
        if best.best_value is None:
            return "best: -"
        return f"best: trial {best.best_number} ({best.best_value:.4g})"

    def _prunes(self, trial: Trial) -> bool:
        """The pruner's answer for `trial`, from the trials numbered below its number - lag."""
        if len(self.study.directions) > 1:
            raise NotImplementedError("pruning is not supported for multi-objective studies")
        study = self.study if self._kept is None else self._kept
        view = LaggedStudy(study, trial.number, self.lag, _settled)
        return bool(self.pruner.prune(view, trial._get_latest_trial()))  # type: ignore[arg-type]

    def _fidelity_of(self, trial: Trial) -> int | None:
        if isinstance(self.sampler, CoarseToFineSampler):
            epochs = self.sampler.epochs_for_trial(trial)
            if epochs is not None:
                return epochs
        return None if self.fidelity_range is None else self.fidelity_range[1]

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
    verbose: bool | None = None,
    **settings: Any,
) -> OptimizeResult:
    """Search `space` for the params that maximize (or minimize) ``objective(params)``.

    See the module docstring for `space`, the objective's optional ``report`` and ``fidelity``
    keywords, `storage`/`study` and `n_jobs`; `settings` are the ``search:`` section's strategy
    settings (``rounds``, ``keep_top``, ...). Mistakes in the arguments raise one `UserError`
    line naming the argument. Same arguments and seed: the same trials. Progress over the trials
    (a bar in a terminal, a line in a notebook) shows unless `verbose=False` (None: when stderr
    is a terminal or in a notebook); Optuna's own INFO line per trial is hidden meanwhile and
    its logging level left as it was.
    """
    if not callable(objective):
        raise UserError(f"objective: must be a function of params, got {excerpt(objective)}")
    with optuna_info_hidden():  # Optuna's "A new study created" line
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
    name = study or "optimize"
    with open_view(trials, name, verbose, kind="trials") as view:
        if (line := search.config.one_round_note()) is not None:
            view.note(line)
        return search.run(objective, n_jobs=n_jobs, view=view)


def _settled(trial: FrozenTrial) -> bool:
    """A trial whose end is known when the next is asked, whatever the timing: interrupted (a
    resumed study's), or an invalid configuration (failed at once); the lagged view shows it as
    it is."""
    return trial.state == TrialState.FAIL and trial.user_attrs.get(OUTCOME) in (
        INTERRUPTED,
        "invalid",
    )


def _trial_record(trial: FrozenTrial) -> dict[str, Any]:
    """A finished trial as a progress view's record: number, state, value."""
    return {"trial": trial.number, "state": trial.state.name.lower(), "value": trial.value}


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
