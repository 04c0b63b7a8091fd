"""A finished run as the study records it: the trial's state, value and user attrs (`outcome`),
and which trials count toward the budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

OUTCOME = "outcome"  # user attr: diverged | crashed | interrupted | invalid
INTERRUPTED = "interrupted"


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


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Every trial counts except those a dead or interrupted driver left unfinished."""
    return not (trial.state == TrialState.FAIL and trial.user_attrs.get(OUTCOME) == INTERRUPTED)
