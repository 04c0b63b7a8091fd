"""Opening a study: creating it, resuming it (every check before the first write), joining a
shared one, and finding one by name or directory.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.study import Study
from optuna.trial import TrialState

from trainlab.errors import UserError
from trainlab.rundir import TRIALS, finished_result
from trainlab.rundir import study_trial_dir as trial_dir  # the search's callers use this name
from trainlab.search.space import Space
from trainlab.search.study.outcome import INTERRUPTED, OUTCOME, outcome
from trainlab.search.study.storage import is_shared, journal_path, open_storage

SIGNATURE_ATTR = "trainlab:signature"
DIR_ATTR = "trainlab:dir"


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
    heartbeat (trainlab.search.running.cooperate) to recover if their driver died.
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
        if (Path(study_dir) / TRIALS).exists():
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
