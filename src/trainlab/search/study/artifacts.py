"""A trial's files in Optuna's artifact store, so every machine of a study can read them.

A driver on a shared storage (PostgreSQL, journal), or given ``--artifacts DIR``, uploads each
finished trial's run-directory files (best.pt, result.json, config.yaml, metrics.jsonl, ...) to a
FileSystemArtifactStore in DIR before it records the trial; the store's folder is the study's
user attr ``trainlab:artifacts``. Where a trial's files are not on this machine (another driver
ran it), `fetch` downloads them into the local study directory (`ensemble --study`, `--retest`,
best.yaml). Default DIR: beside a journal's log (a disk every machine mounts), else
``<study dir>/artifacts``; on several machines with PostgreSQL give a shared ``--artifacts``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from optuna.storages import BaseStorage
from optuna.study import Study
from optuna.trial import FrozenTrial, Trial

from trainlab.errors import UserError

if TYPE_CHECKING:
    from optuna.artifacts import FileSystemArtifactStore

ARTIFACTS_ATTR = "trainlab:artifacts"


def default_dir(journal: Path | None, study_dir: Path, name: str) -> Path:
    """Where a study's artifacts go when ``--artifacts`` is not given: beside a journal's log
    file (`journal`), else in the study directory."""
    if journal is not None:
        return journal.parent / f"{name}-artifacts"
    return Path(study_dir) / "artifacts"


def store_for(directory: str | Path) -> FileSystemArtifactStore:
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--artifacts: cannot create {path} ({exc.strerror})") from None
    from optuna.artifacts import FileSystemArtifactStore  # only where a store is used

    return FileSystemArtifactStore(str(path))


def upload(store: FileSystemArtifactStore, trial: Trial, run_dir: Path) -> int:
    """Upload the run directory's files (top level) as the trial's artifacts; how many."""
    from optuna.artifacts import upload_artifact  # only where a store is used

    n = 0
    for path in sorted(Path(run_dir).glob("*")):
        if path.is_file() and not path.name.endswith(".tmp"):
            upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)
            n += 1
    return n


def store_dir(study: Study, given: str | Path | None = None) -> Path | None:
    """The study's artifact store folder on this machine: `given` (a command's ``--artifacts``)
    or the one the study records; None when it is not a folder here."""
    where = given or study.user_attrs.get(ARTIFACTS_ATTR)
    return Path(where) if where and Path(where).is_dir() else None


def fetch(study: Study, trial: FrozenTrial, run_dir: Path, given: str | Path | None = None) -> bool:
    """Download the trial's artifacts missing from `run_dir`; False when it has none (or the
    study's artifact store, `store_dir(study, given)`, is not here)."""
    where = store_dir(study, given)
    if where is None:
        return False
    from optuna.artifacts import (  # only where a store is used
        FileSystemArtifactStore,
        download_artifact,
        get_all_artifact_meta,
    )

    storage: BaseStorage = study._storage
    metas = get_all_artifact_meta(trial, storage=storage)
    if not metas:
        return False
    store = FileSystemArtifactStore(str(where))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for meta in metas:
        dest = run_dir / Path(meta.filename).name
        if dest.exists():
            continue
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        tmp.unlink(missing_ok=True)
        download_artifact(artifact_store=store, file_path=str(tmp), artifact_id=meta.artifact_id)
        os.replace(tmp, dest)
    return True


def fetch_missing(
    study: Study, run_dirs: dict[int, Path], need: str, given: str | Path | None = None
) -> None:
    """Fetch each trial (number -> its run directory here) whose directory lacks `need`."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number, run_dir in run_dirs.items():
        if number in trials and not (Path(run_dir) / need).is_file():
            fetch(study, trials[number], run_dir, given)
