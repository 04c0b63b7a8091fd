"""The study database and the study directory: opening, locking, resuming, reading back.

The driver is the only process that writes the Optuna study (one writer: SQLite is never written
by several processes at once). A study remembers what it searched (the space, the strategy and
the experiment config) as study user attrs, so `--resume` with something changed is refused
before anything is touched. The study directory (`runs/search/<study>/`) holds:

    trials/<NNNN>/   one run directory per trial (best.pt, result.json, config.yaml, metrics.jsonl)
    retest/<NNNN>-seed<S>/  re-runs of the best K trials with R new seeds (`--retest K`)
    params.png       validation accuracy against each hyperparameter (rounds coloured, boxes)
    curves.png       every trial's validation curve (the caviar view)
    best.yaml        the best trial's full config, taken by `trainlab train` as is
    leaderboard.csv  rank, value, parameters (config values), epochs, seconds, state
    .lock            held (flock) by the running driver
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sqlite3
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from trainlab.config import known_path
from trainlab.errors import UserError
from trainlab.locking import DirLock
from trainlab.search.space import Space, parse_space
from trainlab.search.urls import for_driver, masked, masked_in

DEFAULT_STORAGE = "sqlite:///runs/trainlab.db"
SIGNATURE_ATTR = "trainlab:signature"
DIR_ATTR = "trainlab:dir"
OUTCOME = "outcome"  # user attr: diverged | crashed | interrupted | invalid
INTERRUPTED = "interrupted"


def trial_dir(study_dir: Path, number: int) -> Path:
    """The run directory of trial `number` (the layout `trainlab ensemble --study` reads)."""
    return Path(study_dir) / "trials" / f"{number:04d}"


# --------------------------------------------------------------------------- storage


SHARED_SCHEMES = ("postgresql://", "postgresql+psycopg://", "journal:///")
"""Storages several drivers (on several machines) share: they cooperate on one study."""


def is_shared(url: str) -> bool:
    """PostgreSQL and journal storages are shared by cooperating drivers; SQLite has one."""
    return url.startswith(SHARED_SCHEMES)


def open_storage(url: str, must_exist: bool = False, heartbeat: int | None = None) -> BaseStorage:
    """Open the study storage `url`: ``sqlite:///FILE`` (one driver), ``postgresql://USER@HOST:
    PORT/DB`` (psycopg 3) or ``journal:///ABS/PATH/FILE.log`` (Optuna's journal on a shared disk).

    An SQLite file's folder is created, unless `must_exist` (`--resume`: a missing file is a
    mistake, and no empty database is left behind). `heartbeat` (seconds) turns on Optuna's
    heartbeat on PostgreSQL (the journal's is trainlab.search.cooperate's). Mistakes: one line.
    """
    if url.startswith("journal:"):
        return _open_journal(url, must_exist)
    if url.startswith("postgresql"):
        scheme, sep, rest = url.partition("://")
        if scheme not in ("postgresql", "postgresql+psycopg") or not sep or not rest:
            raise UserError(
                f"--storage: {masked(url)} is not a PostgreSQL URL (postgresql://USER@HOST:PORT/DB)"
            )
        url = "postgresql+psycopg://" + for_driver(url).partition("://")[2]  # masking's split
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise UserError(
                "--storage: PostgreSQL needs psycopg 3: pip install 'trainlab[postgres]'"
            ) from None
    elif url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if must_exist and path and path != ":memory:" and not Path(path).is_file():
            raise UserError(
                f"--resume: no study database {path} to continue; start the "
                "search without --resume (or give its --storage)"
            )
        if path and path != ":memory:":
            parent = Path(path).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(
                    f"--storage: cannot create {parent} for {url} ({exc.strerror})"
                ) from None
    elif "://" not in url:
        raise UserError(
            f"--storage: {url} is not a storage URL (sqlite:///FILE, "
            "postgresql://USER@HOST:PORT/DB or journal:///ABS/PATH/FILE.log)"
        )
    beat = {}
    if heartbeat and url.startswith("postgresql"):
        beat = {"heartbeat_interval": heartbeat, "grace_period": grace_period(heartbeat)}
    try:
        return _rdb_storage(url, beat)
    except Exception as exc:  # sqlalchemy/alembic raise many kinds; the user sees one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        shown = masked_in(reason, url)[:160]  # a password never printed
        raise UserError(f"--storage: cannot open {masked(url)} ({shown})") from None


def close_storage(storage: BaseStorage) -> None:
    """Close a driver's database connections when its search ends. An SQLite study in WAL mode
    folds its ``-wal`` file back into the database file when the last connection closes: done
    here, the file is whole when `search` returns, not whenever the pool is garbage collected.
    The storage stays usable (a later call opens new connections)."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def _rdb_storage(url: str, beat: dict[str, int]) -> BaseStorage:
    """RDBStorage; drivers opening a new PostgreSQL database at once race to create its tables
    (one gets a unique violation on the catalog): the loser retries and finds them made."""
    import sqlalchemy.exc

    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url), **beat)
        except sqlalchemy.exc.DBAPIError as exc:  # a unique violation, a duplicate table
            lost_race = "duplicate key" in str(exc) or "already exists" in str(exc)
            if attempt == 4 or not lost_race or not url.startswith("postgresql"):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def grace_period(heartbeat: int) -> int:
    """How long a RUNNING trial may go without a heartbeat before it counts as dead: three
    beats (one late beat from a busy machine is not a death)."""
    return 3 * heartbeat


def journal_path(url: str) -> Path:
    """The log file of ``journal:///ABS/PATH/FILE.log``."""
    path = url.removeprefix("journal://")
    if not url.startswith("journal:///") or path in ("", "/") or path.endswith("/"):
        raise UserError(
            f"--storage: {url} is not a journal URL (journal:///ABS/PATH/FILE.log, "
            "an absolute path on a disk every machine mounts)"
        )
    return Path(path)


def _open_journal(url: str, must_exist: bool) -> BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = journal_path(url)
    if must_exist and not path.is_file():
        raise UserError(
            f"--resume: no journal {path} to continue; start the search without --resume "
            "(or give its --storage)"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        return optuna.storages.JournalStorage(backend)
    except OSError as exc:
        raise UserError(f"--storage: cannot open {path} ({exc.strerror or exc})") from None


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # One writer, but readers (optuna-dashboard) may hold the file: wait for them, not fail.
        return {"connect_args": {"timeout": 30, "factory": WalConnection}}
    return {"connect_args": {"connect_timeout": 10}}  # an unreachable server: one line, soon


class WalConnection(sqlite3.Connection):
    """An SQLite connection in WAL mode with ``synchronous=NORMAL``, set on every connection.

    The default (a rollback journal, ``synchronous=FULL``) syncs the disk several times a
    commit, and the driver commits each trial's every epoch report before the worker may go on.
    In WAL mode a commit appends to ``FILE.db-wal`` and syncs only at checkpoints: a killed
    process (Ctrl-C, kill -9) loses nothing committed; only an OS crash or power cut can lose
    the last commits (never corrupting the file). Readers (the dashboard's read-only
    connections, `--resume`, `trainlab ensemble`) read while the driver writes, not between its
    commits. WAL needs the readers on the same machine as the file (shared memory): for several
    machines, use a journal or PostgreSQL (docs/scaling.md). The mode is kept in the file.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.execute("PRAGMA journal_mode").fetchone()[0].lower() not in ("wal", "memory"):
            self.execute("PRAGMA journal_mode=WAL")
        self.execute("PRAGMA synchronous=NORMAL")


# --------------------------------------------------------------------------- lock


class StudyLock(DirLock):
    """The running driver's flock on ``<study dir>/.lock``; the kernel drops it when the driver
    dies (see trainlab.locking)."""

    def __init__(self, study_dir: Path) -> None:
        super().__init__(
            study_dir,
            f"--study: {study_dir} is being searched by a running trainlab search (pid {{pid}}); "
            "wait for it or choose another --study/--out",
        )


class NoLock:
    """A shared storage's stand-in for StudyLock: drivers cooperate (search.cooperate)."""

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


# --------------------------------------------------------------------------- a trial's result


def finished_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's result.json if the run finished (an interrupted run counts as missing)."""
    path = Path(run_dir) / "result.json"
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or result.get("stopped_reason") in (None, INTERRUPTED):
        return None
    return result


@dataclass
class Outcome:
    """How a finished run is recorded in Optuna: state, value, user attrs, and its label."""

    state: TrialState
    value: float | None  # the trial's value (COMPLETE only): the best epoch's val accuracy
    attrs: dict[str, Any]
    label: str  # complete | pruned | diverged | failed


def outcome(result: Mapping[str, Any]) -> Outcome:
    """The one rule from a run's result (result.json) to the trial's record, used when a worker
    reports and when `--resume` finds a result the killed driver never recorded."""
    attrs = {k: result.get(k) for k in ("epochs", "seconds", "test_accuracy")}
    reason = result.get("stopped_reason")
    value = result.get("val_accuracy")
    if reason == "diverged":
        return Outcome(TrialState.PRUNED, None, {**attrs, OUTCOME: "diverged"}, "diverged")
    if reason == "pruned":
        return Outcome(TrialState.PRUNED, None, attrs, "pruned")
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        attrs.update({OUTCOME: "crashed", "error": "the run reported no validation accuracy"})
        return Outcome(TrialState.FAIL, None, attrs, "failed")
    return Outcome(TrialState.COMPLETE, float(value), attrs, "complete")


# --------------------------------------------------------------------------- open / resume


def signature(space: Space, strategy: str, experiment_yaml: str) -> dict[str, Any]:
    """What a study searched; `--resume` refuses to continue a study if any of it changed."""
    return {
        "space": {d.name: str(d.spec) for d in space},
        "strategy": strategy,
        "experiment": experiment_yaml,
    }


def _changes(saved: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """A one-line description of the first difference, or None."""
    if saved.get("space") != now["space"]:
        old, new = saved.get("space", {}), now["space"]
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        detail = ", ".join(
            f"{k}: {old.get(k, 'absent')} -> {new.get(k, 'absent')}" for k in changed[:3]
        )
        return f"search.space: differs from the study's space ({detail})"
    if saved.get("strategy") != now["strategy"]:
        return (
            f"search.strategy: the study was searched with {saved.get('strategy')}, "
            f"not {now['strategy']} (give --strategy {saved.get('strategy')} to continue it)"
        )
    if saved.get("experiment") != now["experiment"]:
        old = saved.get("experiment", "").splitlines()
        new = now["experiment"].splitlines()
        diff = next((f"{a.strip()} -> {b.strip()}" for a, b in zip(old, new) if a != b), "")
        return f"config: the experiment differs from the one the study was started with ({diff})"
    return None


@dataclass
class Opened:
    study: Study
    stale: list[int]  # numbers of RUNNING trials of a dead driver, now FAIL (interrupted)
    recovered: list[int] = field(default_factory=list)  # ... whose result.json was written


def open_study(
    storage: BaseStorage,
    name: str,
    study_dir: Path,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    sig: dict[str, Any],
    resume: bool,
    shared: bool = False,
) -> Opened:
    """Create the study, or load it with `resume`; call with the study lock held.

    Every check runs before the first write, so a refused resume leaves the study untouched.
    On resume, RUNNING trials (left by a killed driver: no other driver holds the lock) whose
    run finished (result.json written) are recorded as the driver would have recorded them
    (`outcome`: COMPLETE with the best epoch's validation accuracy, ...) and kept; the others are
    marked FAIL with ``outcome: interrupted`` and their run directories removed, so their slots
    are re-run and nothing of theirs is counted.

    On a `shared` storage (PostgreSQL, journal) a driver joins the study if it exists (same
    signature), without `--resume`; other drivers' RUNNING trials are theirs, left to the
    heartbeat (trainlab.search.cooperate) to recover if their driver died.
    """
    names = {s.study_name for s in storage.get_all_studies()}
    if shared and (name in names or not resume):
        return _join_study(storage, name, study_dir, sampler, pruner, sig, names)
    if not resume:
        if name in names:
            raise UserError(
                f"--study: study {name!r} already exists in the storage; pass --resume to "
                "continue it or choose another --study"
            )
        if (Path(study_dir) / "trials").exists():
            raise UserError(
                f"--out: {study_dir} holds trials of another search; choose another --out "
                "or --study"
            )
        study = optuna.create_study(
            storage=storage, study_name=name, direction="maximize", sampler=sampler, pruner=pruner
        )
        study.set_user_attr(SIGNATURE_ATTR, sig)
        study.set_user_attr(DIR_ATTR, str(Path(study_dir).resolve()))
        return Opened(study, [])
    if name not in names:
        raise UserError(f"--resume: no study {name!r} in the storage to continue")
    study = optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
    saved = study.user_attrs.get(SIGNATURE_ATTR)
    if saved is not None:
        problem = _changes(saved, sig)
        if problem:
            raise UserError(f"{problem}; resume with the same settings or start a new --study")
    stale, recovered = [], []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        result = finished_result(trial_dir(study_dir, t.number))
        if result is not None and t.state == TrialState.RUNNING:
            done = outcome(result)
            for key, value in done.attrs.items():
                storage.set_trial_user_attr(t._trial_id, key, value)
            values = [done.value] if done.value is not None else None
            storage.set_trial_state_values(t._trial_id, done.state, values)
            recovered.append(t.number)
            continue
        storage.set_trial_user_attr(t._trial_id, OUTCOME, INTERRUPTED)
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        shutil.rmtree(trial_dir(study_dir, t.number), ignore_errors=True)
        stale.append(t.number)
    return Opened(study, stale, recovered)


def _join_study(
    storage: BaseStorage,
    name: str,
    study_dir: Path,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    sig: dict[str, Any],
    names: set[str],
) -> Opened:
    """Create the shared study, or join it (another driver created it first)."""
    if name not in names:
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=name,
                direction="maximize",
                sampler=sampler,
                pruner=pruner,
            )
            study.set_user_attr(SIGNATURE_ATTR, sig)
            study.set_user_attr(DIR_ATTR, str(Path(study_dir).resolve()))
            return Opened(study, [])
        except optuna.exceptions.DuplicatedStudyError:
            pass  # another driver created it in the meantime: join it
    study = optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
    saved = study.user_attrs.get(SIGNATURE_ATTR)
    if saved is not None:
        problem = _changes(saved, sig)
        if problem:
            raise UserError(f"{problem}; join the study with its settings or start a new --study")
    return Opened(study, [])


# --------------------------------------------------------------------------- reading back


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Every trial counts except those a dead or interrupted driver left unfinished."""
    return not (trial.state == TrialState.FAIL and trial.user_attrs.get(OUTCOME) == INTERRUPTED)


def state_name(trial: FrozenTrial) -> str:
    """complete | pruned | diverged | failed | interrupted | running."""
    if trial.state == TrialState.COMPLETE:
        return "complete"
    if trial.state == TrialState.PRUNED:
        return "diverged" if trial.user_attrs.get(OUTCOME) == "diverged" else "pruned"
    if trial.state == TrialState.FAIL:
        return INTERRUPTED if not counts_toward_budget(trial) else "failed"
    return "running"


def counts(study: Study) -> dict[str, int]:
    """Trials by state, as `--json` reports them (interrupted ones are not counted)."""
    out = {"complete": 0, "pruned": 0, "diverged": 0, "failed": 0}
    for t in study.get_trials(deepcopy=False):
        name = state_name(t)
        if name in out:
            out[name] += 1
    return out


def last_value(trial: FrozenTrial) -> float | None:
    """The trial's value, or for a pruned trial its last reported validation accuracy."""
    if trial.value is not None:
        return float(trial.value)
    if trial.intermediate_values:
        v = trial.intermediate_values[max(trial.intermediate_values)]
        return float(v) if math.isfinite(v) else None
    return None


def best_trial(study: Study) -> FrozenTrial | None:
    """The COMPLETE trial with the highest value (ties: the earlier one)."""
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None
    ]
    return min(done, key=lambda t: (-t.value, t.number)) if done else None


def trial_params(trial: FrozenTrial, space: Space) -> dict[str, Any]:
    """The trial's parameters as config values (beta, not 1 - beta), unused ones left out."""
    values = space.config_values(trial.params)
    unused = set(trial.user_attrs.get("unused", []))
    return {k: v for k, v in values.items() if k not in unused}


_ORDER = {"complete": 0, "pruned": 1, "diverged": 2, "failed": 3, "running": 4}


def leaderboard(study: Study, space: Space) -> list[dict[str, Any]]:
    """One row per counted trial: complete ones by value, then pruned (by last value), ..."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        state = state_name(t)
        if state == INTERRUPTED:
            continue
        rows.append(
            {
                "trial": t.number,
                "value": last_value(t),
                "state": state,
                "params": trial_params(t, space),
                "unused": list(t.user_attrs.get("unused", [])),
                "epochs": t.user_attrs.get("epochs"),
                "seconds": t.user_attrs.get("seconds"),
                "test_accuracy": t.user_attrs.get("test_accuracy"),
                "round": t.user_attrs.get("round"),
                "error": t.user_attrs.get("error"),
            }
        )
    rows.sort(
        key=lambda r: (
            _ORDER[r["state"]],
            -(r["value"] if r["value"] is not None else -math.inf),
            r["trial"],
        )
    )
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def ranked_trials(
    study: Study, space: Space, states: tuple[str, ...] = ("complete",)
) -> list[dict[str, Any]]:
    """The study's leaderboard rows in `states`, best first: the one ranking of a study (the
    printed leaderboard, `--retest`, `trainlab ensemble --study`)."""
    return [row for row in leaderboard(study, space) if row["state"] in states]


def searched_space(study: Study) -> Space:
    """The space a study searched, rebuilt from its signature (to read its trials' params)."""
    saved = (study.user_attrs.get(SIGNATURE_ATTR) or {}).get("space") or {}
    return parse_space(saved, known_path) if saved else Space([])


def find_study(url: str, name_or_dir: str) -> tuple[Study, Path]:
    """A study and its directory, by study name or by its directory, in the storage `url`."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:" and not Path(path).is_file():
            raise UserError(
                f"--study: no study database {path} to find {name_or_dir!r} in; "
                "give the search's --storage"
            )
    if url.startswith("journal:") and not journal_path(url).is_file():
        raise UserError(
            f"--study: no journal {journal_path(url)} to find {name_or_dir!r} in; "
            "give the search's --storage"
        )
    storage = open_storage(url)
    summaries = storage.get_all_studies()
    found = next((s for s in summaries if s.study_name == name_or_dir), None)
    if found is None and Path(name_or_dir).is_dir():
        where = str(Path(name_or_dir).resolve())
        found = next((s for s in summaries if s.user_attrs.get(DIR_ATTR) == where), None)
    if found is None:
        raise UserError(
            f"--study: no study named {name_or_dir!r} (or searched into that directory) in "
            f"{url}; give the study's name and the search's --storage"
        )
    study = optuna.load_study(storage=storage, study_name=found.study_name)
    directory = study.user_attrs.get(DIR_ATTR)
    if not directory or (is_shared(url) and not Path(directory).is_dir()):
        # another machine's directory: this machine's own, filled from the artifact store
        directory = Path("runs") / "search" / found.study_name
    return study, Path(directory)


def top_run_dirs(
    url: str, name_or_dir: str, k: int, states: tuple[str, ...] = ("complete", "pruned")
) -> tuple[Path, list[Path]]:
    """The study directory and the run directories of its `k` best trials that kept a
    checkpoint, best first by the study's leaderboard (complete trials, then pruned ones:
    trained models too, stopped early)."""
    study, directory = find_study(url, name_or_dir)
    rows = ranked_trials(study, searched_space(study), states)
    from trainlab.search.artifacts import fetch_missing  # trials another machine ran

    dirs: list[Path] = []
    for row in rows:
        if len(dirs) >= k:
            break
        fetch_missing(study, {row["trial"]: trial_dir(directory, row["trial"])}, "best.pt")
        if (trial_dir(directory, row["trial"]) / "best.pt").is_file():
            dirs.append(trial_dir(directory, row["trial"]))
    if not dirs:
        raise UserError(
            f"--study: {study.study_name} ({directory}) has no finished trial with a checkpoint"
        )
    return directory, dirs


def write_leaderboard(rows: list[dict[str, Any]], space: Space, path: Path) -> Path:
    """leaderboard.csv: rank, trial, value, state, epochs, seconds, one column per parameter."""
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "trial", "value", "state", "epochs", "seconds", *space.paths])
        for r in rows:
            w.writerow(
                [r["rank"], r["trial"], r["value"], r["state"], r["epochs"], r["seconds"]]
                + [r["params"].get(p, "") for p in space.paths]
            )
    os.replace(tmp, path)
    return path
