"""The search driver: the one process that owns the study (ask/tell), hands trials to workers,
prunes them on their per-epoch validation accuracy, and writes the study directory.

It asks, reports and tells through `trainlab.search.Search`, the ask/tell API a user's own loop
gets: the budget, round barriers, fidelity (coarse-to-fine's epochs per round) and pruning are
the same code for both.

A trial is `trainlab.engine.train(config, out=<study dir>/trials/<NNNN>/)` with the sampled
values applied to the base experiment config by dotted path. Values that do not apply to the
sampled config (``optim.betas.0`` when ``optim.name`` came out ``sgd``) are dropped and recorded
as the trial's user attr ``unused``. Outcomes in Optuna: a finished run is COMPLETE with its best
validation accuracy; a pruned run is PRUNED; a diverged run (loss NaN/inf or above 3x its start:
the lecture's "learning rate too high") is PRUNED with user attr ``outcome: diverged``; a run
that raised, or whose worker died, is FAIL with ``outcome: crashed`` and the search goes on.

`--resume` continues a study to its total of `trials`: a trial left RUNNING by a killed driver
whose run had finished (result.json written) is recorded as it would have been and kept; the
others are marked FAIL (``outcome: interrupted``) and their slots re-run; finished trials are
never counted twice.

Workers: never more than the trials left to run (re-tests included), started when a trial is
handed to them; above the machine's CPU cores the display gets a one-line note. `trainlab search`
starts its local workers before it reads the config (`SearchOptions.started`, a guess at their
number): the driver takes them over here, ending those above the runs left.

Data: with local workers the driver imports no torch. The first worker prepares the data
(`LocalExecutor.prepare`) and keeps it for its trials; no trial is handed out before it has: a
data mistake is one line, the data's warnings are shown once, a generated set is in the cache
before the other workers read it. A new study of one driver (SQLite) is opened meanwhile and
deleted again on a data mistake; a resumed or shared study is touched only once the data is
good. On Ray or inline the driver prepares it itself (`_warm_data`), before the study is touched.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import Trial, TrialState

from trainlab.config import ExperimentConfig, known_path, read_yaml, to_yaml, validate
from trainlab.config import apply_overrides as apply_set
from trainlab.errors import UserError, warn
from trainlab.experiments.executors import (
    Event,
    Job,
    LocalExecutor,
    make_executor,
    takes_over,
    usable_cores,
)
from trainlab.report.progress import View, open_view, percent, shows
from trainlab.rundir import (
    BEST_YAML,
    CONFIG,
    CURVES,
    PLUGINS,
    TRIAL_KEEPS,
    RunDir,
    atomic_write_text,
    check_out_dir,
    config_dirs,
)
from trainlab.search import study as studies
from trainlab.search.config import SearchConfig, load_search_config
from trainlab.search.optimize import Search
from trainlab.search.running import cooperate
from trainlab.search.running.display import Display, best_of
from trainlab.search.running.retest import retest
from trainlab.search.space import Space, apply_overrides, drop_unused, parse_space
from trainlab.search.strategies import make_pruner, make_sampler
from trainlab.search.study import artifacts as stored

RETEST_BY = "trainlab:retest_by"  # shared storage: the driver that re-tests the study
DRIVERS_ATTR = "trainlab:drivers"  # shared storage: drivers that joined the study so far


#: The `SearchConfig` fields a command-line flag (or a keyword of `search`) sets over the config's
#: ``search:`` section; validated with the section, so a bad value is the same line as in YAML.
SETTINGS = ("strategy", "trials", "workers", "executor", "pruner", "retest", "retest_seeds")
if not set(SETTINGS) <= set(SearchConfig.model_fields):
    raise AssertionError(f"SETTINGS: {set(SETTINGS) - set(SearchConfig.model_fields)}")
INLINE = "inline"  # executor="inline" (Python API, tests): trials run in this process
FILL_SECONDS = 0.5  # shared storage: how often the next trial is looked for without an event


@dataclass
class SearchOptions:
    """What the command line (or a Python caller) sets besides the config's ``search:``:
    `settings` (`SETTINGS` fields over the section) and what is not a search setting."""

    settings: dict[str, Any] = field(default_factory=dict)  # SearchConfig field -> value
    inline: bool = False  # run the trials in this process (``executor="inline"``)
    ray_address: str | None = None
    storage: str | None = None
    study: str | None = None
    out: str | None = None
    resume: bool = False
    overrides: Sequence[str] = ()
    keep_all: bool = False
    threads: int = 1  # torch threads per worker
    heartbeat: int = 30  # seconds between a running trial's heartbeats (shared storages)
    artifacts: str | None = None  # the artifact store's folder (trainlab.search.study.artifacts)
    # local workers started ahead of the plan (LocalExecutor.start); the driver takes them over
    # for a local search (and ends them otherwise); the caller closes them if the driver fails
    started: LocalExecutor | None = None

    @classmethod
    def given(cls, **options: Any) -> SearchOptions:
        """From keywords: `SETTINGS` (None: not given) go to `settings`, ``executor="inline"``
        sets `inline`, the rest are this class's fields (``trials=8, workers=2, out=...``)."""
        settings = {k: options.pop(k) for k in SETTINGS if k in options}
        settings = {k: v for k, v in settings.items() if v is not None}
        if settings.get("executor") == INLINE:
            del settings["executor"]
            options["inline"] = True
        return cls(settings=settings, **options)


@dataclass
class SearchResult:
    """What `trainlab search --json` prints."""

    study: str
    storage: str
    study_dir: str
    trials: dict[str, int]
    best: dict[str, Any] | None
    seconds: float
    loop_seconds: float = 0.0  # from the workers being ready to the last trial's end
    # worker-seconds free workers sat idle because the lag held back the next trial (its
    # trials below n - lag had not all finished): the price of a reproducible parallel search
    lag_wait_seconds: float = 0.0
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 0  # the workers the search used (search.workers, capped at the work left)
    retest: list[dict[str, Any]] | None = None  # one entry per re-tested configuration
    plots: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "study": self.study,
            "storage": self.storage,
            "study_dir": self.study_dir,
            "trials": self.trials,
            "best": self.best,
            "seconds": self.seconds,
            "loop_seconds": self.loop_seconds,
            "lag_wait_seconds": self.lag_wait_seconds,
            "workers": self.workers,
            "leaderboard": self.leaderboard,
            "plots": self.plots,
        }
        if self.retest is not None:
            out["retest"] = self.retest
        return out


class ViewDisplay(Display):
    """The Python API's display (`search(verbose=...)`): a progress view over the study's
    trials (trainlab.report.progress: a bar in a terminal, a line in a notebook)."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.total = self.finished = 0
        self.best: tuple[int, float] | None = None

    def note(self, message: str) -> None:
        self.view.note(message)

    def start(
        self,
        study: str,
        total: int,
        done: int,
        workers: int,
        best: tuple[int, float] | None = None,
    ) -> None:
        self.total, self.finished, self.best = total, done, best
        self.view.start()
        self._show()

    def trial_finished(
        self, number: int, state: str, value: float | None, finished: int | None = None
    ) -> None:
        self.finished = self.finished + 1 if finished is None else finished
        self.best = best_of(self.best, number, state, value)
        self._show({"trial": number, "state": state, "value": value})

    def _show(self, record: dict[str, Any] | None = None) -> None:
        best = f"best: trial {self.best[0]} ({percent(self.best[1])})" if self.best else "best: -"
        self.view.update(self.finished, best, record=record, total=self.total)

    def stop(self) -> None:
        self.view.stop()


# --------------------------------------------------------------------------- preparing


STUDY_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
"""A study name (DESIGN.md Pins): it names a folder, a file and shell arguments."""


@dataclass
class Plan:
    """Everything resolved before the study is touched (so mistakes leave it untouched)."""

    base: dict[str, Any]  # the experiment config (JSON form) without the search section
    experiment: ExperimentConfig
    search: SearchConfig
    space: Space
    name: str
    study_dir: Path
    storage_url: str
    optim_keys: set[str]  # optimizer keys the user wrote (kept when optim.name is sampled)
    search_dirs: tuple[str, ...] = ()  # where workers look up plugins: the config's folder


def plan(config: str | Path | dict[str, Any], options: SearchOptions) -> Plan:
    """Read and check the config, its ``search:`` section, the flags and the space."""
    raw = read_yaml(config) if not isinstance(config, dict) else copy.deepcopy(config)
    raw = apply_set(raw, list(options.overrides))
    section = dict(raw.pop("search", None) or {})
    scfg = load_search_config({**section, **options.settings})
    experiment = validate(raw)
    if experiment.data.val_fraction <= 0:
        raise UserError(
            "data.val_fraction: search ranks trials by validation accuracy; "
            "give a validation split (> 0)"
        )
    base = experiment.model_dump(mode="json")
    base.pop("search", None)
    optim_keys = set(raw.get("optim") or {}) if isinstance(raw.get("optim"), dict) else set()
    space = parse_space(scfg.space, known_path)
    _check_bounds(base, space, optim_keys)
    if isinstance(config, dict):
        default_name = "search"
    else:
        default_name = Path(config).stem
    name = options.study or default_name
    if not STUDY_NAME.fullmatch(name):
        shown = repr(name if len(name) <= 40 else name[:40] + "...") + f" ({len(name)} characters)"
        allowed = "letters, digits, - and _, at most 100 characters"
        if options.study:
            raise UserError(f"--study: {shown} is not a usable study name ({allowed})")
        raise UserError(
            f"--study: the study name defaults to the config's file name {shown}, which is not "
            f"a usable study name ({allowed}); pass --study NAME"
        )
    study_dir = Path(options.out) if options.out else Path("runs") / "search" / name
    check_out_dir(study_dir)  # a file in the way, a read-only disk: one line, nothing made
    return Plan(
        base,
        experiment,
        scfg,
        space,
        name,
        study_dir,
        options.storage or studies.DEFAULT_STORAGE,
        optim_keys,
        () if isinstance(config, dict) else config_dirs(config),
    )


def _applies(path: str, sampled: dict[str, Any]) -> bool:
    name = (sampled.get("optim") or {}).get("name")
    return known_path(path, name if path.startswith("optim.") else None)


def _check_bounds(base: dict[str, Any], space: Space, optim_keys: set[str]) -> None:
    """Each bound (or choice) of each dimension must make a valid config on its own."""
    for dim in space:
        values = dim.choices if dim.is_categorical else (dim.low, dim.high)
        for value in values:
            try:
                sampled_config(base, {dim.name: value}, optim_keys=optim_keys)
            except UserError as exc:
                raise UserError(
                    f"search.space.{dim.name}: {value!r} makes an invalid config ({exc})"
                ) from None


def sampled_config(
    base: dict[str, Any],
    values: dict[str, Any],
    epochs: int | None = None,
    optim_keys: set[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The trial's experiment config (JSON form) and the values that did not apply.

    When ``optim.name`` is sampled, the optimizer section starts from the new optimizer's own
    defaults, keeps the keys the user wrote (`optim_keys`) that it also has, then takes the
    sampled ``optim.*`` values: an Adam base with ``optim.name: sgd`` drops ``betas``.
    """
    used, unused = drop_unused(values, base, _applies)
    config = apply_overrides(base, used)
    name = config["optim"]["name"]
    if name != base["optim"]["name"]:
        keys = set(base["optim"]) if optim_keys is None else optim_keys
        fresh = validate({"optim": {"name": name}}).model_dump(mode="json")["optim"]
        fresh.update(
            {
                k: v
                for k, v in base["optim"].items()
                if k in keys and k != "name" and known_path(f"optim.{k}", name)
            }
        )
        config["optim"] = fresh
        optim_values = {k: v for k, v in used.items() if k.startswith("optim.")}
        config = apply_overrides(config, optim_values)
    if epochs is not None:
        config["train"]["epochs"] = epochs
    return validate(config).model_dump(mode="json"), unused


# --------------------------------------------------------------------------- the driver


class Driver:
    """Runs one search to its budget; see the module docstring."""

    def __init__(self, p: Plan, options: SearchOptions, display: Display | None = None) -> None:
        self.p = p
        self.options = options
        self.display = display or Display()
        self.sampler = make_sampler(p.search, p.space)
        self.pruner = make_pruner(p.search)
        self.search: Search  # the study's ask/tell, once it is open
        self.last: dict[int, float] = {}  # last reported value per running trial
        self.epochs: dict[int, int] = {}  # epochs each running trial trains for
        self.keep = None if options.keep_all else TRIAL_KEEPS
        self.loop_seconds = 0.0
        self.lag_wait_seconds = 0.0  # SearchResult.lag_wait_seconds
        self._held: tuple[float, int] = (0.0, 0)  # since when, how many free workers the lag holds
        self._ended = False  # a trial of this driver ended (a worker freed) since the last _fill
        self._last_fill = -math.inf
        self.workers = 0
        self.shared = studies.is_shared(p.storage_url)  # drivers cooperate (cooperate.py)
        self.heartbeat: cooperate.Heartbeat | None = None
        self.stale_watch: cooperate.StaleWatch | None = None
        self.store: Any = None  # the artifact store, when trials' files are uploaded
        self._last_watch = -math.inf
        # a local search's data is prepared by its first worker (the driver loads no torch)
        self.data_in_worker = not options.inline and p.search.executor == "local"
        self._early: LocalExecutor | None = None  # workers started ahead, preparing the data
        self._data_done = False

    # -- budget

    @property
    def running(self) -> dict[int, Trial]:
        """This driver's trials in flight, by number (asked, not yet told)."""
        return self.search.asked

    def counted(self) -> int:
        return self.search.used

    def run(self) -> SearchResult:
        """The phases, each one's cleanup run however the later ones end: the plan (`self.p`,
        done) -> open the storage and take the study lock -> open the study and start the
        executor -> run the trials (and the re-test) -> finish (leaderboard, plots, best.yaml)."""
        start = time.perf_counter()
        started = self.options.started
        if self.data_in_worker and takes_over("local", started, self.options.threads):
            self._early = started  # its first worker prepares while the storage opens
            self._early.prepare(self.p.base["data"], self.p.search_dirs)
        with studies.optuna_info_hidden(), self._storage_locked() as storage:
            with self._undone_on_mistake():  # every check before the study is created or changed
                opened = self._open_study(storage)
                self._start_executor()
            for number in opened.recovered:  # finished runs the killed driver had not recorded
                RunDir(studies.trial_dir(self.p.study_dir, number)).prune(self.keep)
            with self._executor_closed():
                if (line := self.p.search.one_round_note()) is not None:
                    self.display.note(line)
                best = studies.best_trial(self.study)
                self.display.start(
                    self.p.name,
                    self.p.search.trials,
                    self.counted(),
                    self.workers,
                    best=None if best is None else (best.number, float(best.value)),
                )
                self._loop()
                retest = self._retest() if self.p.search.retest and self._claim_retest() else None
            return self._report(storage, time.perf_counter() - start, retest)

    @contextlib.contextmanager
    def _storage_locked(self) -> Iterator[Any]:
        """Open the storage, then take the study lock (one driver per SQLite study; on a shared
        storage drivers cooperate instead). At the end: stop the heartbeats, close the storage's
        connections (an SQLite study's file is whole when `search` returns), release the lock."""
        p = self.p
        storage = studies.open_storage(
            p.storage_url, must_exist=bool(self.options.resume), heartbeat=self.options.heartbeat
        )
        self.storage = storage
        self.created = not p.study_dir.exists()
        self.lock = studies.StudyLock(p.study_dir) if not self.shared else studies.NoLock()
        try:
            self.lock.acquire()
            yield storage
        finally:
            if self.heartbeat is not None:
                self.heartbeat.stop()
            studies.close_storage(storage)
            self.lock.release()

    @contextlib.contextmanager
    def _undone_on_mistake(self) -> Iterator[None]:
        """A mistake (UserError) found before the first trial leaves nothing behind: a study
        directory this driver created is removed (after its lock is released)."""
        try:
            yield
        except UserError:
            if self.created:
                self.lock.release()
                shutil.rmtree(self.p.study_dir, ignore_errors=True)
            raise

    def _open_study(self, storage: Any) -> studies.Opened:
        """Create, resume or join the study (the data checked first, except for a new study of
        one driver whose first worker prepares it meanwhile: `_start_executor`), then set up
        cooperation and the study's ask/tell."""
        p = self.p
        if not self.data_in_worker or self.options.resume or self.shared:
            # a study others use, or one being resumed, is changed with the data known good
            self._check_data(self._early)
        sig = studies.signature(p.space, p.search.strategy, to_yaml(p.experiment))
        opened = studies.open_study(
            storage,
            p.name,
            p.study_dir,
            self.sampler,
            self.pruner,
            sig,
            self.options.resume,
            shared=self.shared,
        )
        self.study = opened.study
        self._cooperate(storage)
        self.search = Search.over(self.study, p.space, p.search, exclusive=not self.shared)
        return opened

    def _start_executor(self) -> None:
        """The workers, capped at the study's runs left (so the study is opened first); local
        ones all started now, the first preparing the data (`_data_checked`); when they cannot
        start (no Ray, say) or the data is a mistake, a study this driver created is taken
        back."""
        self.executor: Any = None
        try:
            kind = INLINE if self.options.inline else self.p.search.executor
            self.workers = self._workers(kind)
            started = self.options.started
            self.executor = make_executor(
                kind,
                self.workers,
                address=self.options.ray_address,
                threads=self.options.threads,
                note=self.display.note,
                started=started,
            )
            if started is not None and self.executor is not started:
                started.close(kill=True)  # another executor: the early workers end here
            if self.data_in_worker and isinstance(self.executor, LocalExecutor):
                self.executor.start()  # every worker now: their imports overlap the first's data
                self._check_data(self.executor)
        except BaseException:
            if self.executor is not None and self.executor is not started:
                self.executor.close(kill=True)
            if not self.options.resume and not self.shared:
                optuna.delete_study(study_name=self.p.name, storage=self.storage)
            raise

    def _check_data(self, executor: LocalExecutor | None) -> None:
        """Prepare the data once before any trial runs: in `executor`'s first worker, or here
        (`_warm_data`) without one; a data mistake is one line."""
        if self._data_done:
            return
        if executor is None:
            _warm_data(self.p.experiment, self.p.search_dirs)
        else:
            executor.prepare(self.p.base["data"], self.p.search_dirs)  # unless asked already
            self._data_checked(executor.prepared())
        self._data_done = True

    def _data_checked(self, prepared: Event | None) -> None:
        """The first worker's preparation of the data (`LocalExecutor.prepare`): a data mistake
        is one line, the data's warnings are shown once here (the workers keep quiet); None
        (the worker died): each trial prepares its own and says what fails."""
        if prepared is None:
            return
        if prepared.kind == "error":
            if (prepared.result or {}).get("user"):
                raise UserError(prepared.message)
            raise RuntimeError(f"preparing the data failed in a worker:\n{prepared.message}")
        for message in (prepared.result or {}).get("warnings", []):
            warn(message)

    @contextlib.contextmanager
    def _executor_closed(self) -> Iterator[None]:
        """Run trials; at the end the executor is closed (its workers killed if trials are still
        running) and the display stopped; on Ctrl-C the running trials are interrupted first."""
        try:
            yield
        except KeyboardInterrupt:
            self._interrupt()
            raise
        finally:
            self.executor.close(kill=bool(self.running))
            self.display.stop()

    def _cooperate(self, storage: Any) -> None:
        """On a shared storage: heartbeats for this driver's trials, a watch for dead drivers'
        ones; there or with --artifacts: the artifact store trials' files are uploaded to."""
        if self.shared:
            with cooperate.budget_lock(storage, self.p.storage_url, self.p.name):
                joined = int(self.study.user_attrs.get(DRIVERS_ATTR, 0))
                self.study.set_user_attr(DRIVERS_ATTR, joined + 1)
            if joined:  # TPE's own seed, offset per driver: no two draw the same start-up trials
                self.sampler = make_sampler(self.p.search, self.p.space, worker=joined)
                self.study.sampler = self.sampler
            self.heartbeat = cooperate.Heartbeat(storage, self.options.heartbeat)
            self.heartbeat.start()
            self.stale_watch = cooperate.StaleWatch(storage, self.options.heartbeat)
        if self.shared or self.options.artifacts:
            url = self.p.storage_url
            journal = studies.journal_path(url) if url.startswith("journal:") else None
            where = (
                self.options.artifacts
                or self.study.user_attrs.get(stored.ARTIFACTS_ATTR)
                or stored.default_dir(journal, self.p.study_dir, self.p.name)
            )
            self.store = stored.store_for(Path(where).resolve())
            if stored.ARTIFACTS_ATTR not in self.study.user_attrs:
                self.study.set_user_attr(stored.ARTIFACTS_ATTR, str(Path(where).resolve()))

    def _workers(self, kind: str) -> int:
        """``search.workers`` capped at the runs left (trials, then re-tests); a note when that
        is more processes than this machine has cores (local workers)."""
        s = self.p.search
        left = max(0, s.trials - self.counted()) + (s.retest or 0) * (s.retest_seeds or 0)
        workers = max(1, min(s.workers, left))
        if left == 0:
            self.display.note(
                f"search.trials: the study has its {s.trials} trials, nothing left to run; "
                "raise search.trials to run more"
            )
        elif workers < s.workers:
            self.display.note(
                f"search.workers: {s.workers} asked, {left} runs left: starting at most {workers}"
            )
        if workers > s.lag + 1 and self.search.reads_results():
            self.display.note(
                f"search.lag: {s.lag}: trial n reads the results below n - {s.lag}, so at most "
                f"{s.lag + 1} of the {workers} workers train at once; set search.lag: "
                f"{workers - 1} to use them all"
            )
        cores = usable_cores()
        if kind == "local" and workers > cores:
            self.display.note(
                f"search.workers: {workers} workers on {cores} CPU cores; trials will compete "
                "for cores, each running slower"
            )
        return workers

    def _loop(self) -> None:
        """Launch trials into free slots until the budget is spent; the search loop's time
        (`loop_seconds`) starts when the first wave's workers are ready (torch imported).

        The next trial is looked for when one of this driver's trials has ended (only that frees
        a worker or changes what the search may ask, on a storage of its own) and, on a shared
        storage, at least every `FILL_SECONDS` (other drivers' trials end there too); not after
        each epoch report."""
        self._fill()
        if hasattr(self.executor, "wait_ready"):
            self.executor.wait_ready()
        loop_start = time.perf_counter()
        self._held = (time.perf_counter(), self._held[1])  # the lag's waiting counts from here
        while self.running or self._others_running():
            if self.running:
                self.executor.step(self._handle, timeout=FILL_SECONDS)
            else:  # other drivers' trials: wait for them (or for their retries to hand out)
                time.sleep(FILL_SECONDS)
            due = self.shared and time.monotonic() - self._last_fill >= FILL_SECONDS
            if self._ended or due or not self.running:
                self._fill()
        self._count_lag_wait(0)
        self.loop_seconds = time.perf_counter() - loop_start

    def _others_running(self) -> bool:
        """Shared storage: trials of other drivers still RUNNING, or retries WAITING."""
        if not self.shared:
            return False
        states = (TrialState.RUNNING, TrialState.WAITING)
        return any(
            t.number not in self.running
            for t in self.study.get_trials(deepcopy=False, states=states)
        )

    def _fill(self) -> None:
        """Launch trials while workers are free and the search can ask: the budget is not
        spent and no round (or block) must first finish; its box (or the values it holds)
        comes from those results, which also makes a parallel coarse-to-fine search
        independent of the order trials finish in."""
        self._ended, self._last_fill = False, time.monotonic()
        self._recover_stale()
        held = 0
        while self.executor.free() > 0:
            with cooperate.budget_lock(self.storage, self.p.storage_url, self.p.name):
                reason = self.search.held_by()
                if reason is not None:
                    held = self.executor.free() if reason == "lag" else 0
                    break
                self._launch()
        self._count_lag_wait(held)

    def _count_lag_wait(self, held: int) -> None:
        """Add the idle worker time since the last count (`_held`) to `lag_wait_seconds`; from
        now on `held` free workers wait for the lag."""
        now = time.perf_counter()
        since, before = self._held
        self.lag_wait_seconds += before * (now - since)
        self._held = (now, held)

    def _recover_stale(self) -> None:
        """Shared storage, once a heartbeat interval: dead drivers' trials become interrupted
        and are enqueued again (cooperate.recover), under the budget lock."""
        now = time.monotonic()
        if self.stale_watch is None or now - self._last_watch < self.options.heartbeat:
            return
        self._last_watch = now
        own = {t._trial_id for t in self.running.values()}
        stale = self.stale_watch.stale(self.study, own)
        if not stale:
            return
        with cooperate.budget_lock(self.storage, self.p.storage_url, self.p.name):
            for t in stale:
                if cooperate.recover(self.study, t):
                    self.display.note(f"trial {t.number}: its driver stopped beating; re-run")

    def _launch(self) -> None:
        number, values = self.search.ask()
        trial = self.search.trial(number)
        if self.heartbeat is not None:
            self.heartbeat.add(trial._trial_id)
        epochs = self.search.fidelity(number)
        try:
            config, unused = sampled_config(self.p.base, values, epochs, self.p.optim_keys)
        except UserError as exc:  # this combination of values is not a valid experiment
            trial.set_user_attr(studies.OUTCOME, "invalid")
            trial.set_user_attr("error", str(exc))
            self.search.tell(number, None)
            self._forget(trial)
            self._show_finished(number, "failed", None)
            return
        if unused:
            trial.set_user_attr("unused", sorted(unused))
        out = studies.trial_dir(self.p.study_dir, number)
        self.epochs[number] = config["train"]["epochs"]
        self.display.trial_started(
            number, {k: v for k, v in values.items() if k not in unused}, config["train"]["epochs"]
        )
        dirs = self.p.search_dirs
        job = Job(number, config, str(out), keep=self.keep, search_dirs=dirs)
        if getattr(self.executor, "judges_locally", False):  # no round trip per epoch
            job.pruning = self.search.local_pruning(number, config["train"]["epochs"])
        self.executor.submit(job)

    def _handle(self, event: Event) -> bool | None:
        """An executor's event: an epoch's report (recorded; judged here unless the worker
        judged it, `Event.stop`: True stops the trial), or a trial's end (recorded)."""
        if event.kind != "epoch":
            self._ended = True  # its worker is free: look for the next trial
        trial = self.running.get(event.number)
        if trial is None:
            return False
        if event.kind == "epoch":
            self.display.epoch(event.number, event.epoch, event.value)
            if event.value is None or not math.isfinite(event.value):
                return False
            try:
                if event.stop is None:
                    prune = self.search.report(event.number, event.epoch, event.value)
                else:  # judged in the worker (Job.pruning): record only
                    self.search.record(event.number, event.epoch, event.value)
                    prune = False
            except optuna.exceptions.UpdateFinishedTrialError:
                return True  # judged dead by another driver (its retry runs): stop this run
            self.last[event.number] = float(event.value)
            # pruning after the last epoch saves nothing and loses a result
            return prune and event.epoch < self.epochs.get(event.number, math.inf)
        self.epochs.pop(event.number, None)
        try:
            return self._record(trial, event)
        except optuna.exceptions.UpdateFinishedTrialError:
            return None  # judged dead by another driver meanwhile: its retry counts instead
        finally:
            self.search.drop(event.number)
            self._forget(trial)

    def _forget(self, trial: Trial) -> None:
        if self.heartbeat is not None:
            self.heartbeat.discard(trial._trial_id)

    def _show_finished(self, number: int, state: str, value: float | None) -> None:
        """Tell the display a trial finished; on a shared study, with how many of the study's
        trials (every driver's) are finished, so N/total counts toward the study's budget."""
        finished = studies.finished(self.study) if self.shared else None
        self.display.trial_finished(number, state, value, finished)

    def _record(self, trial: Trial, event: Event) -> None:
        """Tell the study a finished trial's outcome (its files uploaded first, if stored)."""
        if event.kind == "error":
            trial.set_user_attr(studies.OUTCOME, "crashed")
            trial.set_user_attr("error", event.message[-2000:])
            self._write_error(event)
            self.search.tell(event.number, None)
            self._show_finished(event.number, "failed", None)
            return None
        done = studies.outcome(event.result or {})
        for key, value in done.attrs.items():
            trial.set_user_attr(key, value)
        last = self.last.pop(event.number, None)
        if self.store is not None:  # before tell: a finished trial takes no more attrs
            stored.upload(self.store, trial, studies.trial_dir(self.p.study_dir, event.number))
        if done.state == TrialState.COMPLETE:
            self.search.tell(event.number, done.value)
        else:
            self.search.tell(event.number, None, pruned=done.state == TrialState.PRUNED)
        shown = done.value if done.label == "complete" else last if done.label == "pruned" else None
        self._show_finished(event.number, done.label, shown)
        return None

    def _write_error(self, event: Event) -> None:
        out = studies.trial_dir(self.p.study_dir, event.number)
        out.mkdir(parents=True, exist_ok=True)
        (out / "error.txt").write_text(event.message + "\n")

    def _interrupt(self) -> None:
        """Ctrl-C: running trials become FAIL (interrupted), so --resume re-runs their slots."""
        for number, trial in list(self.running.items()):
            shutil.rmtree(studies.trial_dir(self.p.study_dir, number), ignore_errors=True)
            if self.shared:  # the other drivers re-run its slot with the same parameters
                cooperate.recover(self.study, self.study._storage.get_trial(trial._trial_id))
                self.search.drop(number)
                continue
            trial.set_user_attr(studies.OUTCOME, studies.INTERRUPTED)
            self.search.tell(number, None)
        self.executor.close(kill=True)
        try:
            self._write_outputs()
        except Exception:  # plots of a half study are a nicety; the study itself is saved
            pass

    def _run_dirs(self, numbers: Any) -> dict[int, Path]:
        """Trial numbers -> their run directories in this driver's study directory."""
        return {n: studies.trial_dir(self.p.study_dir, n) for n in numbers}

    # -- re-test

    def _claim_retest(self) -> bool:
        """One re-test per study: on a shared storage the first driver to finish claims it
        (study user attr ``trainlab:retest_by``); the others leave it with a note."""
        if not self.shared:
            return True
        with cooperate.budget_lock(self.storage, self.p.storage_url, self.p.name):
            by = self.study.user_attrs.get(RETEST_BY)
            if by is None:
                self.study.set_user_attr(RETEST_BY, f"{socket.gethostname()}:{os.getpid()}")
                return True
        self.display.note(f"search.retest: the re-test runs on another driver ({by})")
        return False

    def _retest(self) -> list[dict[str, Any]]:
        """Re-train each of the best `retest` configs with `retest_seeds` new seeds, on the
        search's executor; see trainlab.search.running.retest."""
        top = studies.ranked_trials(self.study, self.p.space)[: self.p.search.retest]
        stored.fetch_missing(self.study, self._run_dirs(r["trial"] for r in top), CONFIG)
        out = retest(
            self.p.study_dir,
            top,
            study_seed=self.p.search.seed,
            seeds=self.p.search.retest_seeds,
            executor=self.executor,
            display=self.display,
            keep=self.keep,
            search_dirs=self.p.search_dirs,
        )
        self.study.set_user_attr("trainlab:retest", out)
        return out

    # -- outputs

    def _write_outputs(self, rows: list[dict[str, Any]] | None = None) -> dict[str, str]:
        """leaderboard.csv (of `rows`, the study's leaderboard), the plots and best.yaml."""
        from trainlab.search.study.plots import (  # Pillow loads only when plots are drawn
            curves_from_study,
            plot_curves,
            plot_params,
        )

        d = self.p.study_dir
        d.mkdir(parents=True, exist_ok=True)  # a driver that joined a spent study ran nothing
        rows = studies.leaderboard(self.study, self.p.space) if rows is None else rows
        studies.write_leaderboard(rows, self.p.space, d / "leaderboard.csv")
        plots = {
            "params": str(plot_params(self.study, self.p.space, d / "params.png")),
            "curves": str(
                plot_curves(
                    curves_from_study(self.study),
                    d / CURVES,
                    title=f"{self.p.name}: every trial's validation accuracy",
                )
            ),
        }
        best = studies.best_trial(self.study)
        if best is not None:
            stored.fetch_missing(self.study, self._run_dirs([best.number]), CONFIG)
            src = studies.trial_dir(d, best.number) / CONFIG
            if src.exists():
                atomic_write_text(
                    d / BEST_YAML,
                    f"# best trial {best.number} of study "
                    f"{self.p.name}: validation accuracy {best.value:.4f}\n" + src.read_text(),
                )
                plugins = src.parent / PLUGINS  # where best.yaml's plugins are found
                if plugins.exists():
                    atomic_write_text(d / PLUGINS, plugins.read_text())
        return plots

    def _report(
        self, storage: Any, seconds: float, retest: list[dict[str, Any]] | None
    ) -> SearchResult:
        rows = studies.leaderboard(self.study, self.p.space)
        plots = self._write_outputs(rows)
        best = studies.best_trial(self.study)
        best_out = None
        if best is not None:
            best_out = {
                "trial": best.number,
                "value": best.value,
                "params": studies.trial_params(best, self.p.space),
                "test_accuracy": best.user_attrs.get("test_accuracy"),
                "run_dir": str(studies.trial_dir(self.p.study_dir, best.number)),
                "config_path": str(self.p.study_dir / BEST_YAML),
            }
        return SearchResult(
            study=self.p.name,
            storage=self.p.storage_url,
            study_dir=str(self.p.study_dir),
            trials=studies.counts(self.study),
            best=best_out,
            seconds=round(seconds, 3),
            loop_seconds=round(self.loop_seconds, 3),
            lag_wait_seconds=round(self.lag_wait_seconds, 3),
            workers=self.workers,
            leaderboard=rows,
            retest=retest,
            plots=plots,
        )


def _warm_data(cfg: ExperimentConfig, search_dirs: tuple[str, ...] = ()) -> None:
    """Build the data once here (a search on Ray or inline; a local one's first worker does it,
    `LocalExecutor.prepare`): a data mistake is one line before any trial runs, and generated
    sets (MNIST-1D) land in the cache before the workers race to make them."""
    from trainlab.data import prepare  # heavy: torch

    prepare(cfg.data, search_dirs=search_dirs)


def search(
    config: str | Path | dict[str, Any],
    options: SearchOptions | None = None,
    display: Display | None = None,
    model: Any = None,
    data: Any = None,
    verbose: bool | None = None,
    **kwargs: Any,
) -> SearchResult:
    """Run (or with ``resume=True`` continue) a hyperparameter search; the Python API.

    `config` is an experiment config with a ``search:`` section (a YAML path or a dict);
    keyword arguments are `SearchOptions.given`'s (``trials=8, workers=2, out=...``). `model` is
    a model factory importable by name (it becomes model.kind; model.args.* can be searched),
    `data` a data function importable by name (it becomes data.name; data.args.* likewise).
    Without a `display`, progress over the trials shows unless `verbose=False` (None: when
    stderr is a terminal or in a notebook).
    """
    options = options or SearchOptions.given(**kwargs)
    if model is not None:
        from trainlab.experiments.given_model import factory_override  # heavy: the trainer

        options = replace(options, overrides=[*options.overrides, factory_override(model)])
    if data is not None:
        from trainlab.data.given import data_override  # heavy: torch (the caller has it)

        options = replace(options, overrides=[*options.overrides, data_override(data, True)])
    p = plan(config, options)
    if display is None and shows(verbose):
        display = ViewDisplay(open_view(p.search.trials, p.name, verbose, kind="trials"))
    return Driver(p, options, display).run()
