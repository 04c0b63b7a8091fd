"""The studies in the served directory's Optuna databases (`DIR/*.db`, trainlab.db by default).

Each database is opened read-only (`file:...?mode=ro`): the dashboard never writes it, never
creates tables, and holds SQLite's shared lock only while one query runs, so the search writing
the study waits milliseconds at most (its busy timeout is 30 s) and is never refused. One
read-only storage per database is kept, so Optuna's cache of finished trials makes polls cheap.
"""

from __future__ import annotations

import math
import threading
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.study import Study

from trainlab.dashboard.files import FileCache, read_text, relative_name, served_files
from trainlab.dashboard.liveness import held_flock_inodes, lock_held
from trainlab.search import study as studies
from trainlab.search.samplers import BLOCK_ATTR, ROUND_ATTR, boxes

DEFAULT_DB = "trainlab.db"
PICTURES = (".png", ".svg", ".jpg")
LEADERBOARD_ROWS = 100  # the page shows the top of it; leaderboard.csv has every row


def read_only_url(db: Path) -> str:
    """SQLAlchemy URL of an SQLite file opened read-only (no write, no journal, no new file)."""
    return f"sqlite:///file:{db.resolve()}?mode=ro&uri=true"


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


class StudyReader:
    """Reads every study of the databases in `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache = FileCache()
        self._storages: dict[Path, RDBStorage] = {}
        self._studies: dict[tuple[Path, str], Study] = {}  # kept: Optuna caches finished trials
        self._lock = threading.Lock()  # one reader at a time per dashboard: short queries

    def databases(self) -> list[Path]:
        dbs = sorted(self.root.glob("*.db"), key=lambda p: (p.name != DEFAULT_DB, p.name))
        return [p for p in dbs if p.is_file()]

    def _storage(self, db: Path) -> RDBStorage | None:
        if db not in self._storages:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._storages[db] = RDBStorage(
                        read_only_url(db), skip_compatibility_check=True, skip_table_creation=True
                    )
            except Exception:  # not an Optuna database (or not yet one): nothing to show
                return None
        return self._storages[db]

    def _found(self) -> dict[str, tuple[RDBStorage, str, Path]]:
        """Dashboard name -> (storage, study name, database); a name repeated in a second
        database is shown as `<db stem>:<study>`."""
        out: dict[str, tuple[RDBStorage, str, Path]] = {}
        for db in self.databases():
            storage = self._storage(db)
            if storage is None:
                continue
            try:
                names = [s.study_name for s in storage.get_all_studies()]
            except Exception:  # a file that is no Optuna database
                continue
            for name in names:
                key = name if name not in out else f"{db.stem}:{name}"
                out[key] = (storage, name, db)
        return out

    def _study(self, storage: RDBStorage, name: str, db: Path) -> Study:
        if (db, name) not in self._studies:
            self._studies[(db, name)] = optuna.load_study(storage=storage, study_name=name)
        return self._studies[(db, name)]

    def _directory(self, study: Study) -> Path:
        where = study.user_attrs.get(studies.DIR_ATTR)
        return Path(where) if where else self.root / "search" / study.study_name

    def _shown_dir(self, directory: Path) -> str | None:
        try:
            return relative_name(self.root, directory)
        except ValueError:
            return None  # outside the served directory: its files are not served

    def index(self) -> list[dict[str, Any]]:
        held = held_flock_inodes()
        rows = []
        with self._lock:
            for key, (storage, name, db) in self._found().items():
                study = self._study(storage, name, db)
                trials = study.get_trials(deepcopy=False)
                best = studies.best_trial(study)
                states = [studies.state_name(t) for t in trials]
                directory = self._directory(study)
                rows.append(
                    {
                        "name": key,
                        "study": name,
                        "database": db.name,
                        "directory": self._shown_dir(directory),
                        "status": "running" if lock_held(directory, held) else "finished",
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
        storage, name, db = found[key]
        with self._lock:
            study = self._study(storage, name, db)
            return self._detail(study, key, db)

    def _detail(self, study: Study, key: str, db: Path) -> dict[str, Any]:
        space = studies.searched_space(study)
        directory = self._directory(study)
        shown = self._shown_dir(directory)
        trials = []
        for t in study.get_trials(deepcopy=False):
            group = t.system_attrs.get(ROUND_ATTR, t.system_attrs.get(BLOCK_ATTR))
            curve = sorted(t.intermediate_values.items())
            trials.append(
                {
                    "number": t.number,
                    "state": studies.state_name(t),
                    "value": studies.last_value(t),
                    "params": studies.trial_params(t, space),
                    "group": None if group is None else int(group),
                    "curve": [[e, _finite(v)] for e, v in curve],
                    "epochs": t.user_attrs.get("epochs"),
                    "test_accuracy": t.user_attrs.get("test_accuracy"),
                    "run": f"{shown}/trials/{t.number:04d}" if shown else None,
                }
            )
        best = studies.best_trial(study)
        board = studies.leaderboard(study, space)
        best_yaml = self.cache.get(directory / "best.yaml", read_text) if shown else None
        return {
            "name": key,
            "study": study.study_name,
            "database": db.name,
            "directory": shown,
            "status": "running" if lock_held(directory, held_flock_inodes()) else "finished",
            "grouping": "round"
            if any(ROUND_ATTR in t.system_attrs for t in study.get_trials(deepcopy=False))
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
            "pictures": served_files(self.root, directory, PICTURES) if shown else [],
        }
