"""Several drivers on one study (PostgreSQL or journal storage, one driver per machine).

The rules, all enforced through the shared storage (no driver talks to another):

- Budget: `trials` is the study's total. A driver asks for a trial only inside the study's
  budget lock (a PostgreSQL advisory lock; on a journal, an O_EXCL lock file beside the log, as
  Optuna's journal itself uses), after counting the trials that count (every trial but WAITING
  ones, which `ask` hands out next, and interrupted ones): the total is exact.
- Heartbeat: every RUNNING trial's driver beats every `heartbeat` seconds from a thread
  (PostgreSQL: Optuna's heartbeat table, timed by the server's clock; journal: a counter in the
  trial's system attrs, whose changes each driver times on its own monotonic clock, so clocks of
  different machines never meet). A RUNNING trial silent for the grace period
  (`study.grace_period`, three beats) belonged to a dead driver. So did one that never beat (its
  driver died between asking it and its first beat; PostgreSQL's stale-trial query never returns
  one without a heartbeat row): it is timed the same way, from when this driver first saw it.
- Recovery: a stale trial is marked FAIL (``outcome: interrupted``, not counted) by whichever
  driver wins the state change, and that driver enqueues a retry with the same parameters
  (user attr ``retry_of``), which the next `ask` of any driver runs. A finished trial cannot be
  made stale (its state is final), so it is never re-run. Timing decides only *when* a retry
  runs, never its numbers: same parameters, same config seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from trainlab.search import study as studies
from trainlab.search.study.leaderboard import counted as counted  # re-exported: the budget
from trainlab.search.study.leaderboard import finished as finished

# ask/tell with RDB heartbeats is what this module does on purpose (Optuna assumes optimize())
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed", category=UserWarning)

BEAT_ATTR = "trainlab:beat"  # journal storage: the trial's heartbeat counter
RETRY_OF = "retry_of"  # user attr of a retry: the number of the stale trial it re-runs


@contextlib.contextmanager
def budget_lock(storage: BaseStorage, url: str, name: str) -> Iterator[None]:
    """The study's budget lock across drivers (none needed on SQLite: one driver)."""
    if not studies.is_shared(url):
        yield
    elif isinstance(storage, RDBStorage):
        import sqlalchemy

        key = int.from_bytes(hashlib.sha256(f"trainlab:{name}".encode()).digest()[:8], "big")
        key -= 1 << 63  # a signed bigint, as pg_advisory_lock takes
        with storage.engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    else:
        from optuna.storages.journal import JournalFileOpenLock

        # a killed holder's lock file is taken over after the lock's grace period
        lock = JournalFileOpenLock(f"{studies.journal_path(url)}.{name}.budget", grace_period=10)
        lock.acquire()
        try:
            yield
        finally:
            lock.release()


class Heartbeat:
    """Beats for this driver's RUNNING trials from a daemon thread, every `interval` seconds
    (a thread, so a busy driver loop — workers starting, plots — never looks dead)."""

    def __init__(self, storage: BaseStorage, interval: int) -> None:
        self.storage = storage
        self.interval = interval
        self.trials: dict[int, int] = {}  # trial id -> beats sent
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, trial_id: int) -> None:
        with self._lock:
            self.trials[trial_id] = 0
        self.beat(trial_id)

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self.trials.pop(trial_id, None)

    def beat(self, trial_id: int) -> None:
        with self._lock:
            if trial_id not in self.trials:
                return
            self.trials[trial_id] += 1
            count = self.trials[trial_id]
        try:
            if isinstance(self.storage, RDBStorage):
                self.storage.record_heartbeat(trial_id)
            else:
                self.storage.set_trial_system_attr(trial_id, BEAT_ATTR, count)
        except optuna.exceptions.UpdateFinishedTrialError:
            self.discard(trial_id)  # finished meanwhile (or recovered by another driver)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trainlab-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                ids = list(self.trials)
            for trial_id in ids:
                try:
                    self.beat(trial_id)
                except Exception:  # a storage hiccup: the next beat tries again
                    pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class StaleWatch:
    """Finds the RUNNING trials of dead drivers (see the module docstring)."""

    def __init__(self, storage: BaseStorage, interval: int) -> None:
        self.storage = storage
        self.grace = studies.grace_period(interval)
        self.seen: dict[int, tuple[Any, float]] = {}  # trial id -> (beat, since)

    def stale(self, study: Study, own: set[int]) -> list[FrozenTrial]:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        running = [t for t in running if t._trial_id not in own]
        if isinstance(self.storage, RDBStorage):
            ids = set(self.storage._get_stale_trial_ids(study._study_id))
            beating = _with_heartbeat_row(self.storage, [t._trial_id for t in running])
            never = self._unchanged([t for t in running if t._trial_id not in beating], None)
            return [t for t in running if t._trial_id in ids] + never
        return self._unchanged(running, BEAT_ATTR)

    def _unchanged(self, trials: list[FrozenTrial], attr: str | None) -> list[FrozenTrial]:
        """The `trials` whose beat (system attr `attr`; None: no beat at all) has not changed
        for the grace period, timed on this driver's monotonic clock from when it first saw
        each (forgets the trials not given)."""
        now = time.monotonic()
        out = []
        alive = {t._trial_id for t in trials}
        self.seen = {k: v for k, v in self.seen.items() if k in alive}
        for t in trials:
            beat = t.system_attrs.get(attr) if attr else None
            last = self.seen.get(t._trial_id)
            if last is None or last[0] != beat:
                self.seen[t._trial_id] = (beat, now)
            elif now - last[1] > self.grace:
                out.append(t)
        return out


def _with_heartbeat_row(storage: RDBStorage, trial_ids: list[int]) -> set[int]:
    """The trials among `trial_ids` that have beat at least once (a row in Optuna's heartbeat
    table)."""
    if not trial_ids:
        return set()
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    beat = models.TrialHeartbeatModel
    with _create_scoped_session(storage.scoped_session) as session:
        rows = session.query(beat.trial_id).filter(beat.trial_id.in_(trial_ids)).all()
    return {row[0] for row in rows}


def recover(study: Study, trial: FrozenTrial) -> bool:
    """Mark a stale trial interrupted and enqueue its retry; False when another driver (or the
    trial's own, late) finished it first."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, studies.OUTCOME, studies.INTERRUPTED)
        if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    attrs = {k: v for k, v in trial.user_attrs.items() if k == RETRY_OF}
    study.enqueue_trial(dict(trial.params), user_attrs={RETRY_OF: trial.number, **attrs})
    return True
