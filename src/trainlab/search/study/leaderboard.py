"""Reading a study back: trial states and counts, the budget used, the best trial, the
leaderboard (printed, leaderboard.csv, `--retest`, `trainlab ensemble --study`).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from trainlab.config import known_path
from trainlab.errors import UserError
from trainlab.rundir import BEST
from trainlab.search.space import Space, parse_space
from trainlab.search.study.opening import SIGNATURE_ATTR, find_study, trial_dir
from trainlab.search.study.outcome import INTERRUPTED, OUTCOME, counts_toward_budget


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


def counted(study: Study) -> int:
    """Trials that use the study's budget: all but WAITING (handed out by the next ask) and
    interrupted ones (their slot is re-run)."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state != TrialState.WAITING and counts_toward_budget(t)
    )


def finished(study: Study) -> int:
    """Trials of the study that finished and used its budget, whichever driver ran them."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and counts_toward_budget(t)
    )


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


def top_run_dirs(
    url: str, name_or_dir: str, k: int, states: tuple[str, ...] = ("complete", "pruned")
) -> tuple[Path, list[Path]]:
    """The study directory and the run directories of its `k` best trials that kept a
    checkpoint, best first by the study's leaderboard (complete trials, then pruned ones:
    trained models too, stopped early)."""
    study, directory = find_study(url, name_or_dir)
    rows = ranked_trials(study, searched_space(study), states)
    from trainlab.search.study.artifacts import fetch_missing  # trials another machine ran

    dirs: list[Path] = []
    for row in rows:
        if len(dirs) >= k:
            break
        fetch_missing(study, {row["trial"]: trial_dir(directory, row["trial"])}, BEST)
        if (trial_dir(directory, row["trial"]) / BEST).is_file():
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
