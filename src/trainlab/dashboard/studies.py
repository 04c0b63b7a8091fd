"""The studies in the served directory's Optuna databases (`DIR/*.db`, trainlab.db by default).

Each database is opened read-only (`file:...?mode=ro`): the dashboard never writes it, never
creates tables, and holds SQLite's shared lock only while one query runs, so the search writing
the study waits milliseconds at most (its busy timeout is 30 s) and is never refused. One
read-only storage per database is kept, so Optuna's cache of finished trials makes polls cheap.

`--storage URL` adds the studies of another storage: an SQLite file (read-only, as above), or a
shared PostgreSQL or journal study opened by trainlab.search.study.open_storage once, at start
(a journal is re-read from where it was left on each poll; PostgreSQL's RDBStorage caches
finished trials as SQLite's does). A trial of a shared study whose folder is not on this machine
links to `@fetched/<study>/trials/<NNNN>`: opening it downloads its files from the study's
artifact store (trainlab.search.artifacts) into a cache folder, once, and serves them from there.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainlab.dashboard.files import FileCache, read_text, relative_name, served_files
from trainlab.dashboard.liveness import held_flock_inodes, lock_held
from trainlab.dashboard.tail import finite as _finite
from trainlab.errors import UserError
from trainlab.plugins import first_line
from trainlab.rundir import BEST_YAML, CONFIG, STUDIES_DB, TRIALS, is_run, study_trial_dir

if TYPE_CHECKING:
    from optuna.storages import BaseStorage, RDBStorage
    from optuna.study import Study
    from optuna.trial import FrozenTrial

# Optuna (and what the study modules bring) loads when a study is first read, not at start-up:
# the runs page answers as soon as the server is up. Hence the function-local imports below.

DEFAULT_DB = STUDIES_DB
PICTURES = (".png", ".svg", ".jpg")
LEADERBOARD_ROWS = 100  # the page shows the top of it; leaderboard.csv has every row
FETCHED = "@fetched"  # run names of trials fetched from an artifact store into the cache
IMPORTANCE_EVERY = 10.0  # seconds between two importance computations of a growing study


def read_only_url(db: Path) -> str:
    """SQLAlchemy URL of an SQLite file opened read-only (no write, no journal, no new file)."""
    return f"sqlite:///file:{db.resolve()}?mode=ro&uri=true"


def read_only_storage(db: Path) -> RDBStorage:
    """An SQLite study database opened read-only (raises when it is no Optuna database)."""
    from optuna.storages import RDBStorage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RDBStorage(
            read_only_url(db), skip_compatibility_check=True, skip_table_creation=True
        )


@dataclass(frozen=True)
class Source:
    """A storage whose studies are shown: a DIR/*.db file or a --storage URL."""

    label: str  # the "database" the pages show (a file name, a URL with its password masked)
    stem: str  # a study name already seen in another source is shown as `<stem>:<study>`
    storage: BaseStorage
    shared: bool = False  # PostgreSQL or journal: drivers on several machines, no lock file


def open_source(url: str) -> Source:
    """A --storage URL opened for reading: SQLite read-only, PostgreSQL and journal through
    open_storage. A missing file, a bad URL or a missing driver: one line naming --storage."""
    from trainlab.search import study as studies  # heavy: Optuna, when a study is read
    from trainlab.search.study.urls import masked  # with the study modules, when one is read

    if url.startswith("sqlite:///"):
        return _sqlite_source(url, Path(url.removeprefix("sqlite:///")))
    if url.startswith("journal:") and not studies.journal_path(url).is_file():
        raise UserError(
            f"--storage: no journal {studies.journal_path(url)}; give a search's --storage"
        )
    storage = studies.open_storage(url, must_exist=True)  # its errors mask the password
    stem = studies.journal_path(url).stem if url.startswith("journal:") else url.rsplit("/", 1)[-1]
    return Source(masked(url), stem, storage, shared=studies.is_shared(url))


def _sqlite_source(url: str, db: Path) -> Source:
    if not db.is_file():
        raise UserError(f"--storage: no study database {db}; give a search's --storage")
    try:
        storage = read_only_storage(db)
        storage.get_all_studies()
    except Exception:  # noqa: BLE001 (sqlalchemy raises many kinds)
        raise UserError(f"--storage: {db} is not an Optuna study database") from None
    return Source(url, db.stem, storage)


class StudyReader:
    """Reads every study of the databases in `root` and of the `storages` URLs; trials whose
    folders are elsewhere are fetched from `artifacts` (or the study's store) into `cache`."""

    def __init__(
        self,
        root: Path,
        storages: list[str] | tuple[str, ...] = (),
        artifacts: str | Path | None = None,
        cache: Path | None = None,
    ) -> None:
        self.root = root
        self.cache = FileCache(root)
        self.fetched = cache
        if artifacts is not None and not Path(artifacts).is_dir():
            raise UserError(f"--artifacts: no folder {artifacts}; give the search's --artifacts")
        self.artifacts = artifacts
        self._urls = [open_source(url) for url in storages]
        self._sources: dict[Path, Source | None] = {}
        self._studies: dict[tuple[int, str], Study] = {}  # kept: Optuna caches finished trials
        self._slugs: dict[str, tuple[Source, str]] = {}  # fetched folder -> (source, study)
        # study -> (complete trials counted, when, importances or None while computing)
        self._importances: dict[tuple[int, str], tuple[int, float, dict[str, Any] | None]] = {}
        self._computing: set[tuple[int, str]] = set()
        self._importance_lock = threading.Lock()
        self._importance_slot = threading.Lock()
        self._lock = threading.Lock()  # one reader at a time per dashboard: short queries
        self._fetch_lock = threading.Lock()  # one download at a time (artifacts.fetch's temps)

    def databases(self) -> list[Path]:
        dbs = sorted(self.root.glob("*.db"), key=lambda p: (p.name != DEFAULT_DB, p.name))
        return [p for p in dbs if p.is_file() and self.cache.allowed(p)]  # no link out of DIR

    def _source(self, db: Path) -> Source | None:
        if db not in self._sources:
            try:
                self._sources[db] = Source(db.name, db.stem, read_only_storage(db))
            except Exception:  # not an Optuna database (or not yet one): nothing to show
                return None
        return self._sources[db]

    def _found(self) -> dict[str, tuple[Source, str]]:
        """Dashboard name -> (source, study name): DIR's databases, then the --storage ones; a
        name repeated in a later source is shown as `<stem>:<study>`."""
        out: dict[str, tuple[Source, str]] = {}
        sources = [self._source(db) for db in self.databases()] + self._urls
        for source in sources:
            if source is None:
                continue
            try:
                names = [s.study_name for s in source.storage.get_all_studies()]
            except Exception:  # a file that is no Optuna database, a server gone away
                continue
            for name in names:
                key = name if name not in out else f"{source.stem}:{name}"
                out[key] = (source, name)
        return out

    def _study(self, source: Source, name: str) -> Study:
        key = (id(source.storage), name)
        if key not in self._studies:
            import optuna

            self._studies[key] = optuna.load_study(storage=source.storage, study_name=name)
        return self._studies[key]

    def _directory(self, study: Study) -> Path:
        from trainlab.search import study as studies  # heavy: Optuna, when a study is read

        where = study.user_attrs.get(studies.DIR_ATTR)
        return Path(where) if where else self.root / "search" / study.study_name

    def _shown_dir(self, directory: Path) -> str | None:
        try:
            return relative_name(self.root, directory)
        except ValueError:
            return None  # outside the served directory: its files are not served

    def _status(
        self, source: Source, directory: Path, trials: list[FrozenTrial], held: set[int] | None
    ) -> str:
        """running: the driver's lock is held here, or (shared study) a trial is running."""
        from optuna.trial import TrialState

        running = source.shared and any(t.state == TrialState.RUNNING for t in trials)
        return "running" if running or lock_held(directory, held) else "finished"

    def index(self) -> list[dict[str, Any]]:
        held = held_flock_inodes()
        rows = []
        with self._lock:
            for key, (source, name) in self._found().items():
                from trainlab.search import study as studies  # heavy: Optuna, when there is one

                study = self._study(source, name)
                trials = study.get_trials(deepcopy=False)
                best = studies.best_trial(study)
                states = [studies.state_name(t) for t in trials]
                directory = self._directory(study)
                rows.append(
                    {
                        "name": key,
                        "study": name,
                        "database": source.label,
                        "directory": self._shown_dir(directory),
                        "status": self._status(source, directory, trials, held),
                        "trials": len(trials),
                        "states": {s: states.count(s) for s in sorted(set(states))},
                        "best_value": _finite(best.value) if best else None,
                        "best_trial": best.number if best else None,
                        "strategy": (study.user_attrs.get(studies.SIGNATURE_ATTR) or {}).get(
                            "strategy"
                        ),
                    }
                )
        return rows

    def detail(self, key: str) -> dict[str, Any] | None:
        found = self._found()
        if key not in found:
            return None
        source, name = found[key]
        with self._lock:
            study = self._study(source, name)
            return self._detail(study, key, source)

    def _slug(self, source: Source, study: Study) -> str:
        """The cache folder of a study's fetched trials: its name and a digest of its source."""
        digest = hashlib.sha1(f"{source.label}\n{study.study_name}".encode()).hexdigest()[:8]
        slug = f"{study.study_name}-{digest}".replace("/", "_")
        self._slugs[slug] = (source, study.study_name)
        return slug

    def _trial_run(
        self,
        source: Source,
        t: FrozenTrial,
        directory: Path,
        shown: str | None,
        slug: str,
        fetchable: bool,
    ) -> str | None:
        """The run name a trial links to: its folder under DIR (`shown`), else (a shared study's
        finished trial, with an artifact store here) its folder in the fetch cache, else None."""
        if shown and (not source.shared or is_run(study_trial_dir(directory, t.number))):
            return f"{shown}/trials/{t.number:04d}"
        if self.fetched is None or not t.state.is_finished():
            return None
        name = f"{slug}/trials/{t.number:04d}"
        return f"{FETCHED}/{name}" if fetchable or is_run(self.fetched / name) else None

    def fetch_run(self, name: str) -> Path | None:
        """The cache folder of `@fetched/<slug>/trials/<NNNN>`, its files downloaded from the
        study's artifact store when missing; None when the name is no such trial."""
        from trainlab.search.study import artifacts as stored  # heavy: Optuna, with the study

        parts = name.split("/")
        if self.fetched is None or len(parts) != 4 or parts[0] != FETCHED or parts[2] != TRIALS:
            return None
        with self._lock:
            if parts[1] not in self._slugs:  # a link opened before its study page was read
                for source, study_name in self._found().values():
                    self._slug(source, self._study(source, study_name))
            if parts[1] not in self._slugs or not parts[3].isdigit():
                return None
            study = self._study(*self._slugs[parts[1]])
        run_dir = self.fetched / parts[1] / TRIALS / parts[3]
        with self._fetch_lock:
            stored.fetch_missing(study, {int(parts[3]): run_dir}, CONFIG, self.artifacts)
        return run_dir

    def importances(
        self, source: Source, study: Study, space: Any, trials: list[FrozenTrial]
    ) -> dict[str, Any]:
        """{params: [{path, importance}] (largest first), trials: the complete trials they come
        from, note: why there are none}. Computed in a thread (fANOVA takes seconds: the page
        does not wait; it shows them on a later poll) on a copy of the complete trials, and
        again when more trials are complete, at most every IMPORTANCE_EVERY seconds."""
        from optuna.trial import TrialState  # Optuna loads only when a study is read

        done = [t for t in trials if t.state == TrialState.COMPLETE]
        key = (id(source.storage), study.study_name)
        with self._importance_lock:
            count, when, found = self._importances.get(key, (-1, -math.inf, None))
            waited = not (found or {}).get("params") or time.monotonic() - when >= IMPORTANCE_EVERY
            stale = count != len(done) and waited
            if stale and key not in self._computing:
                self._computing.add(key)
                self._importances[key] = (count, time.monotonic(), found)
                args = (key, study.direction, space, done)
                threading.Thread(target=self._compute, args=args, daemon=True).start()
        if found is None:
            return {"params": [], "trials": len(done), "note": "computing the importances..."}
        return found

    def _compute(self, key: tuple[int, str], direction: Any, space: Any, done: list) -> None:
        found = None
        try:
            with self._importance_slot:  # one computation at a time (a CPU each)
                found = _importances(direction, space, done)
        finally:
            with self._importance_lock:
                self._computing.discard(key)
                if found is not None:
                    self._importances[key] = (len(done), time.monotonic(), found)

    def _detail(self, study: Study, key: str, source: Source) -> dict[str, Any]:
        from trainlab.search import study as studies  # heavy: Optuna, when a study is read
        from trainlab.search.strategies.base import BLOCK_ATTR, ROUND_ATTR  # heavy: Optuna
        from trainlab.search.study import artifacts as stored  # heavy: Optuna, with the study
        from trainlab.search.study.rounds import boxes  # heavy: Optuna, with the study

        space = studies.searched_space(study)
        directory = self._directory(study)
        shown = self._shown_dir(directory)
        fetchable = self.fetched is not None and stored.store_dir(study, self.artifacts) is not None
        slug = self._slug(source, study)
        frozen = study.get_trials(deepcopy=False)
        trials = []
        for t in frozen:
            group = t.system_attrs.get(ROUND_ATTR, t.system_attrs.get(BLOCK_ATTR))
            curve = sorted(t.intermediate_values.items())
            trials.append(
                {
                    "number": t.number,
                    "state": studies.state_name(t),
                    "value": studies.last_value(t),
                    "best_value": best_value(t),
                    "params": studies.trial_params(t, space),
                    "group": None if group is None else int(group),
                    "curve": [[e, _finite(v)] for e, v in curve],
                    "epochs": t.user_attrs.get("epochs"),
                    "test_accuracy": t.user_attrs.get("test_accuracy"),
                    "run": self._trial_run(source, t, directory, shown, slug, fetchable),
                }
            )
        best = studies.best_trial(study)
        board = studies.leaderboard(study, space)
        best_of = {t["number"]: t["best_value"] for t in trials}
        for row in board[:LEADERBOARD_ROWS]:
            row["best_value"] = best_of.get(row["trial"])
        best_yaml = self.cache.get(directory / BEST_YAML, read_text) if shown else None
        elsewhere = sum(1 for t in trials if t["run"] is None) if source.shared else 0
        return {
            "name": key,
            "study": study.study_name,
            "database": source.label,
            "directory": shown,
            "status": self._status(source, directory, frozen, held_flock_inodes()),
            "elsewhere": _elsewhere(elsewhere, fetchable) if elsewhere else None,
            "grouping": "round"
            if any(ROUND_ATTR in t.system_attrs for t in frozen)
            else ("block" if any(t["group"] is not None for t in trials) else None),
            "space": [
                {
                    "path": d.name,
                    "kind": d.kind,
                    "log": d.log,
                    "low": d.low,
                    "high": d.high,
                    "choices": list(d.choices) if d.is_categorical else None,
                }
                for d in space
            ],
            "trials": trials,
            "boxes": [{p: list(v) for p, v in box.items()} for box in boxes(study)],
            "leaderboard": board[:LEADERBOARD_ROWS],
            "leaderboard_total": len(board),
            "retest": study.user_attrs.get("trainlab:retest") or [],
            "best": None
            if best is None
            else {
                "trial": best.number,
                "value": _finite(best.value),
                "params": studies.trial_params(best, space),
            },
            "best_yaml": best_yaml,
            "importances": self.importances(source, study, space, frozen),
            "pictures": served_files(self.root, directory, PICTURES) if shown else [],
        }


def _importances(direction: Any, space: Any, done: list[FrozenTrial]) -> dict[str, Any]:
    """Optuna's parameter importances (fANOVA) over the complete trials `done` (copied into an
    in-memory study: the storage is not touched from this thread), by config path."""
    import optuna  # loaded only when a study is read

    out: dict[str, Any] = {"params": [], "trials": len(done), "note": None}
    if len(done) < 2:
        out["note"] = "importances need 2 complete trials"
        return out
    paths = {d.param_name: d.name for d in space.dims}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line
            copy = optuna.create_study(direction=direction)
            copy.add_trials(done)
            found = optuna.importance.get_param_importances(copy)
    except Exception as exc:  # noqa: BLE001 (params that differ between trials, a lone value)
        out["note"] = f"no importances: {first_line(exc)}"
        return out
    out["params"] = [
        {"path": paths.get(name, name), "importance": _finite(v)} for name, v in found.items()
    ]
    return out


def best_value(t: FrozenTrial) -> float | None:
    """The validation accuracy of the trial's best epoch: its value when complete, else the
    highest it reported (a diverged trial's last epochs collapse; its test accuracy is that
    best epoch's)."""
    from optuna.trial import TrialState  # Optuna loads only when a study is read

    if t.state == TrialState.COMPLETE and t.value is not None:
        return _finite(t.value)
    values = [v for v in t.intermediate_values.values() if math.isfinite(v)]
    return max(values) if values else None


def _elsewhere(n: int, fetchable: bool) -> str:
    """The study page's line about trials whose files this machine cannot reach (yet)."""
    files = f"{n} trial's files are" if n == 1 else f"{n} trials' files are"
    if fetchable:
        return f"{files} on another machine, still running: fetched from the store once finished"
    return (
        f"{files} on another machine (no artifact store here: give --artifacts DIR); "
        "the numbers shown come from the storage"
    )
