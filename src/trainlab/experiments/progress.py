"""The engine's side of a progress view (trainlab.report.progress): a callback that moves the
view with the run's epochs. `trainlab.train` and the CLI's bar both use it."""

from __future__ import annotations

from typing import Any

from trainlab.engine.trainer import Callback
from trainlab.report.progress import View, epoch_status


class EpochProgress(Callback):
    """Shows the view when training starts (not before: a set-up mistake stays one line) and
    moves it one step per epoch with the epoch's loss and accuracies."""

    def __init__(self, view: View) -> None:
        self.view = view

    def on_train_start(self, trainer) -> None:  # noqa: ANN001
        self.view.start()
        self.view.update(trainer.state.epoch)

    def on_epoch_end(self, trainer, record: dict[str, Any]) -> None:  # noqa: ANN001
        self.view.update(record["epoch"], epoch_status(record), record=record)
