"""What a run records: the train state saved in every checkpoint, and the Result it reports.
(The callback hooks live beside the loop that calls them, in trainlab.engine.trainer.)"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    """What a run reports (result.json and `--json`); accuracies are fractions in [0, 1]."""

    run_dir: str
    epochs: int
    best_epoch: int
    seconds: float
    train_accuracy: float
    val_accuracy: float
    test_accuracy: float
    test_loss: float
    stopped_reason: str  # completed | early_stopping | diverged | interrupted | pruned (search)
    steps: int = 0
    parameters: int = 0
    advice: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # ema_test_accuracy, tta_test_accuracy...

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "extra"}
        d.update(self.extra)
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        names = {f for f in cls.__dataclass_fields__ if f != "extra"}
        base = {
            k: (float("nan") if v is None and k.endswith(("accuracy", "loss")) else v)
            for k, v in d.items()
            if k in names
        }
        return cls(**base, extra={k: v for k, v in d.items() if k not in names})


@dataclass
class TrainState:
    """Where a run is: saved in every checkpoint, so a resumed run continues from it."""

    epoch: int = 0  # last completed epoch
    step: int = 0
    best_val: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    seconds: float = 0.0
    initial_loss: float | None = None
    stopped_reason: str = "completed"
