"""The study's storage: opening SQLite, PostgreSQL and journal storages (mistakes in one line),
closing them, the lock that keeps one driver per SQLite study, and Optuna's INFO log lines
hidden while trainlab shows the trials itself (`optuna_info_hidden`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage

from trainlab.errors import UserError
from trainlab.locking import DirLock
from trainlab.rundir import DEFAULT_STORAGE as DEFAULT_STORAGE
from trainlab.search.study.urls import for_driver, masked, masked_in

SHARED_SCHEMES = ("postgresql://", "postgresql+psycopg://", "journal:///")
"""Storages several drivers (on several machines) share: they cooperate on one study."""


@contextlib.contextmanager
def optuna_info_hidden() -> Iterator[None]:
    """Optuna's INFO lines (one per trial, one per study created) hidden while a search runs:
    trainlab shows the trials itself, or nothing with verbose=False. Only Optuna's default
    level (INFO) is raised, to WARNING; a level the user chose (DEBUG, ERROR) is kept, and the
    level on entry is restored on exit (never a global change)."""
    level = optuna.logging.get_verbosity()
    if level == optuna.logging.INFO:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def is_shared(url: str) -> bool:
    """PostgreSQL and journal storages are shared by cooperating drivers; SQLite has one."""
    return url.startswith(SHARED_SCHEMES)


def open_storage(url: str, must_exist: bool = False, heartbeat: int | None = None) -> BaseStorage:
    """Open the study storage `url`: ``sqlite:///FILE`` (one driver), ``postgresql://USER@HOST:
    PORT/DB`` (psycopg 3) or ``journal:///ABS/PATH/FILE.log`` (Optuna's journal on a shared disk).

    An SQLite file's folder is created, unless `must_exist` (`--resume`: a missing file is a
    mistake, and no empty database is left behind). `heartbeat` (seconds) turns on Optuna's
    heartbeat on PostgreSQL (the journal's is trainlab.search.running.cooperate's). Mistakes: one
    line.
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
