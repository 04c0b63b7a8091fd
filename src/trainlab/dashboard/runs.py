"""The runs under the served directory: the index (/api/runs) and one run's detail.

A run is a directory with a config.yaml. The index lists the runs outside study directories
(a study's trials appear on its page), one row per run; the detail carries its per-epoch metrics,
its per-step loss raw and smoothed (downsampled on the server to at most MAX_POINTS points,
keeping each bucket's lowest and highest point, so a spike survives: dashboard.stepcurve), the
advice, the config, the pictures it left, and ensemble members and averaged models.

A `trainlab compare` folder (compare.json, compare.png, <config>/seed-<s>/ runs) is one entry of
kind compare, not a run: its detail is the comparison (configs, verdicts), its picture and its
seed runs, which are reached from its page as an ensemble's members are.

Polls are cheap: metrics.jsonl and steps.jsonl are read on from where the last poll stopped
(trainlab.dashboard.tail; only the downsampled step curve is kept, never the rows), and a page
that says what it holds (`since`: its epochs and steps) gets only the epochs after those and no
step curve when no step was added.

One damaged run never hides the others: a file linking outside the served directory is not
read, a result.json that is no object or whose advice is no list of {code, message}, a config.yaml
that is no YAML mapping are left out, and the run's `error` says why in one line (anything
else that goes wrong reading a run is said there too); the rest of the run is shown.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import yaml

from trainlab.dashboard.files import (
    FileCache,
    contained,
    read_text,
    relative_name,
    served_files,
    stat_key,
)
from trainlab.dashboard.liveness import held_flock_inodes, lock_held, recently_changed
from trainlab.dashboard.tail import Epochs, Tail, read_rows
from trainlab.dashboard.tail import finite as _finite
from trainlab.plugins import first_line
from trainlab.report.advice import UPDATE_RATIO_FAR, UPDATE_RATIO_TARGET
from trainlab.rundir import (
    COMPARE_MARK,
    COMPARE_PICTURE,
    CONFIG,
    MEMBERS,
    METRICS,
    RESULT,
    STEPS,
    TRIALS,
    RunDir,
    is_comparison,
    is_run,
    read_json_object,
    seed_runs,
)

__all__ = ["RunReader"]
PICTURES = (".png", ".svg", ".jpg")
MEMBER_DIRS = (MEMBERS,)
STATUSES = ("running", "completed", "early_stopping", "diverged", "interrupted")
UPDATE_RATIO_BAND = [
    UPDATE_RATIO_TARGET / UPDATE_RATIO_FAR,
    UPDATE_RATIO_TARGET,
    UPDATE_RATIO_TARGET * UPDATE_RATIO_FAR,
]
# what the run page gets of a run that cannot be read (beside its index row and error)
UNREAD_DETAIL = {
    "metrics": [],
    "metrics_from": 0,
    "metrics_total": 0,
    "steps": {"total": 0, "step": [], "loss": [], "smoothed": []},
    "result": None,
    "advice_all": [],
    "update_ratio_band": UPDATE_RATIO_BAND,
    "config": "",
    "config_values": {},
    "pictures": [],
    "members": [],
    "averaged": {},
    "snapshots": [],
}
RUN_FILES = (CONFIG, METRICS, STEPS, RESULT)  # what the pages read of a run


def is_study_dir(path: Path) -> bool:
    """A study directory (runs/search/<study>/): its trials are shown by the study page."""
    return (path / TRIALS).is_dir()


def find_runs(root: Path) -> list[Path]:
    """Every run (and comparison) under root, not descending into runs (members),
    comparisons or study directories."""
    return walk(root)[0]


def walk(root: Path) -> tuple[list[Path], list[Path]]:
    """(runs, folders outside runs and studies): the latter may hold the pictures of commands
    that are no runs (runs/lr-find/, runs/landscape/)."""
    runs: list[Path] = []
    others: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if is_run(here) or is_comparison(here):
            runs.append(here)
            dirnames.clear()
        elif is_study_dir(here):
            dirnames.clear()
        else:
            others.append(here)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(runs), others


class RunReader:
    """Reads runs under `root`, caching parsed files until they change; their names in URLs are
    `prefix` + their path under root (the fetch cache's runs: ``@fetched/...``)."""

    def __init__(self, root: Path, prefix: str = "") -> None:
        self.root = root
        self.prefix = prefix
        self.cache = FileCache(root)
        self._tails: dict[tuple[Path, type], Tail] = {}
        self._tail_lock = threading.Lock()  # requests run in threads: one finds or makes a tail

    def _read(self, path: Path, fold: type) -> tuple[Any, Path | None, int]:
        """(fold of `path` brought up to date, its real path, bytes read) through `contained`
        (a file that links out of DIR reads as missing)."""
        real = contained(self.root, path)
        if real is None:
            return fold(), None, 0
        with self._tail_lock:
            tail = self._tails.setdefault((path, fold), Tail(fold))
        with tail.lock:  # one reader per file; other runs are read meanwhile
            return tail.read(real), real, tail.offset

    def epochs(self, path: Path) -> Epochs:
        """What the index needs of metrics.jsonl: its rows' count, last row, best val accuracy."""
        return self._read(path / METRICS, Epochs)[0]

    def metrics(self, path: Path, first: int = 0) -> list[dict[str, Any]]:
        """metrics.jsonl's rows from `first` on (re-read from where they start)."""
        epochs, real, end = self._read(path / METRICS, Epochs)
        if real is None or first >= len(epochs):
            return []
        try:
            return read_rows(real, epochs, end, first)
        except OSError:
            return []

    # ----------------------------------------------------------------- one row of the index

    def status(self, path: Path, result: dict[str, Any] | None, held: set[int] | None) -> str:
        if lock_held(path, held):
            return "running"
        if result and result.get("stopped_reason") in STATUSES:
            return result["stopped_reason"]
        if result is None and recently_changed(path / METRICS):
            return "running"
        return "interrupted"

    def checked(
        self, path: Path
    ) -> tuple[dict[str, Any] | None, dict[str, Any], str | None, list[str]]:
        """(result.json's object or None, config.yaml's mapping, why part of the run is left
        out or None, the run's files that link out of DIR): what the pages show of it."""
        refused = self.cache.refused(path, RUN_FILES)
        why = [f"{name} links outside the served directory (not read)" for name in refused]
        result = self.cache.get(path / RESULT, read_json_object)
        if result is None and RESULT not in refused and stat_key(path / RESULT) is not None:
            why.append(f"{RESULT} is not a JSON object")
        advice = (result or {}).get("advice", [])
        if not _is_advice(advice):
            why.append(f"{RESULT}: advice is not a list of {{code, message}} (not shown)")
            result = {**(result or {}), "advice": []}
        config, problem = self.cache.get(path / CONFIG, read_config, ({}, None))
        why += [problem] if problem else []
        return result, config, "; ".join(why) or None, refused

    def summary(self, path: Path, held: set[int] | None = None) -> dict[str, Any]:
        try:
            return self._summary(path, held)
        except Exception as exc:  # noqa: BLE001 (one run read wrong never hides the others)
            return self._unread(path, f"cannot be read: {first_line(exc)}")

    def _unread(self, path: Path, error: str | None) -> dict[str, Any]:
        """The index row of a run nothing could be read of, saying why."""
        return {
            "name": self.prefix + relative_name(self.root, path),
            "kind": "run",
            "error": error,
            "status": "interrupted",
            "epoch": None,
            "val_accuracy": None,
            "test_accuracy": None,
            "advice": [],
            "modified": None,
        }

    def _summary(self, path: Path, held: set[int] | None) -> dict[str, Any]:
        if not is_run(path):
            return self._comparison_row(path, held)
        epochs = self.epochs(path)
        result, _, error, refused = self.checked(path)
        best_val = _finite(result.get("val_accuracy")) if result else None
        return {
            "name": self.prefix + relative_name(self.root, path),
            "kind": "run" if CONFIG in refused else RunDir(path).kind(),
            "error": error,
            "status": self.status(path, result, held),
            "epoch": epochs.last.get("epoch") if epochs.last else None,
            "val_accuracy": best_val if best_val is not None else epochs.best_val,
            "test_accuracy": _finite(result.get("test_accuracy")) if result else None,
            "advice": [a["code"] for a in (result or {}).get("advice", [])],
            "modified": _mtime(path / METRICS) or _mtime(path / CONFIG),
        }

    def index(self) -> list[dict[str, Any]]:
        held = held_flock_inodes()
        return [self.summary(p, held) for p in find_runs(self.root)]

    def _comparison_row(self, path: Path, held: set[int] | None) -> dict[str, Any]:
        """The index row of a `trainlab compare` folder: completed once compare.json is
        written, running while one of its seed runs is."""
        report = self.cache.get(path / COMPARE_MARK, read_json_object)
        groups = seed_runs(path) if self.cache.allowed(path) else []
        status = "completed" if report is not None else "interrupted"
        if report is None and any(lock_held(r, held) for _, runs in groups for r in runs):
            status = "running"
        broken = report is None and stat_key(path / COMPARE_MARK) is not None
        return {
            **self._unread(path, f"{COMPARE_MARK} is not a JSON object" if broken else None),
            "kind": "compare",
            "status": status,
            "runs": sum(len(runs) for _, runs in groups),
            "modified": _mtime(path / COMPARE_MARK) or _mtime(path),
        }

    def comparison(self, path: Path) -> dict[str, Any]:
        """The page of a `trainlab compare` folder: its row, the comparison it wrote (the
        --json object: configs, pairs with verdicts), its picture and its seed runs."""
        held = held_flock_inodes()
        picture = [n for n in self.pictures(path) if n.endswith("/" + COMPARE_PICTURE)]
        return {
            **self.summary(path, held),
            "comparison": self.cache.get(path / COMPARE_MARK, read_json_object),
            "picture": picture[0] if picture else None,
            "pictures": self.pictures(path),
            "groups": [
                {"config": key, "runs": [self.summary(r, held) for r in runs]}
                for key, runs in (seed_runs(path) if self.cache.allowed(path) else [])
            ],
        }

    def loose_pictures(self) -> list[str]:
        """Pictures under root outside runs and studies (lr-find, landscapes)."""
        return [name for d in walk(self.root)[1] for name in served_files(self.root, d, PICTURES)]

    # ----------------------------------------------------------------- one run

    def steps(self, path: Path, had: int | None = None) -> dict[str, Any]:
        """The per-step loss, raw and smoothed, downsampled; `total` is the steps recorded.
        Just {total, unchanged: true} when the page `had` that many already."""
        from trainlab.dashboard.stepcurve import StepCurve  # numpy: not for the index

        curve = self._read(path / STEPS, StepCurve)[0]
        return {"total": had, "unchanged": True} if had == curve.total else curve.points()

    def detail(self, path: Path, since: tuple[int, int] | None = None) -> dict[str, Any]:
        """Everything the run page shows; what cannot be read is left empty and said in
        `error` (the page still answers). `since` (epochs, steps) is what the page already
        holds: `metrics` then starts at that epoch's row (`metrics_from`), and `steps` is
        {total, unchanged: true} when the steps recorded are still that many."""
        try:
            return self._detail(path, since)
        except Exception as exc:  # noqa: BLE001 (the page shows what it can, and why not more)
            return {
                **self.summary(path),
                **UNREAD_DETAIL,
                "error": f"cannot be read: {first_line(exc)}",
            }

    def _detail(self, path: Path, since: tuple[int, int] | None) -> dict[str, Any]:
        held = held_flock_inodes()
        first, had_steps = since or (0, 0)
        total = len(self.epochs(path))
        first = first if first <= total else 0  # a file replaced by a shorter one: all again
        result, config, _, _ = self.checked(path)
        members = [
            self.summary(d, held)
            for sub in MEMBER_DIRS
            for d in sorted((path / sub).glob("*"))
            if d.is_dir() and is_run(d) and self.cache.allowed(d)  # never a link out of DIR
        ]
        averaged = {
            k: v
            for k, v in (result or {}).items()
            if k.endswith("_accuracy") and k.split("_")[0] in ("ema", "snapshot", "ensemble", "tta")
        }
        return {
            **self.summary(path, held),
            "metrics": self.metrics(path, first),
            "metrics_from": first,
            "metrics_total": total,
            "steps": self.steps(path) if since is None else self.steps(path, had_steps),
            "result": result,
            "advice_all": (result or {}).get("advice", []),
            "update_ratio_band": UPDATE_RATIO_BAND,
            "config": self.cache.get(path / CONFIG, read_text, ""),
            "config_values": flatten(config),
            "pictures": self.pictures(path),
            "members": members,
            "averaged": averaged,
            "snapshots": [p.name for p in RunDir(path).snapshots()]
            if self.cache.allowed(RunDir(path).snapshots_dir)
            else [],
        }

    def pictures(self, path: Path) -> list[str]:
        """The images a run or command left in the run directory (curves, landscapes, lr-find)."""
        return [self.prefix + name for name in served_files(self.root, path, PICTURES)]


def read_config(path: Path) -> tuple[dict[str, Any], str | None]:
    """config.yaml as a mapping, and why it is not one (None when it is; {} then)."""
    try:
        tree = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"{CONFIG} cannot be read ({first_line(exc)})"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        return {}, f"{CONFIG} is not valid YAML ({getattr(exc, 'problem', None) or 'error'}{where})"
    if tree is not None and not isinstance(tree, dict):
        return {}, f"{CONFIG} is a {type(tree).__name__}, not a mapping of settings"
    return tree or {}, None


def _is_advice(advice: Any) -> bool:
    """A result's advice as the report writes it: a list of {code, message} strings."""
    return isinstance(advice, list) and all(
        isinstance(a, dict) and isinstance(a.get("code"), str) and isinstance(a.get("message"), str)
        for a in advice
    )


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}: what compare's differences table lists."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
