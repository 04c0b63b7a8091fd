"""The CLI's trainer callbacks: the dashboard hint and the per-epoch bar that travels to the
processes of `--nproc`. A module of its own because a callback is an engine class (torch): the
commands import it when they run, so that the parser is built without torch. Both classes sit at
module level, so they pickle by name for `--nproc`."""

from __future__ import annotations

import sys
from pathlib import Path

from trainlab.commands.dashboard import hint
from trainlab.commands.output import ProgressBar
from trainlab.engine.trainer import Callback


class DashboardHint(Callback):
    """Prints `hint` on stderr when training starts (not before: a mistake stays one line), once
    (an ensemble's members start one after the other), on rank 0 alone."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(root)
        self.shown = False

    def on_train_start(self, trainer) -> None:  # noqa: ANN001
        if trainer.ranks.main and not self.shown:
            sys.stderr.write(hint(self.root) + "\n")
            self.shown = True


class SentBar(Callback):
    """The per-epoch bar as a callback that travels to the processes of `--nproc` (by pickle):
    rank 0 draws it, the other ranks draw nothing."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: ProgressBar | None = None
        self.hook: Callback | None = None

    def on_train_start(self, trainer) -> None:  # noqa: ANN001
        if trainer.ranks.main:
            self.bar = ProgressBar(self.total)
            self.hook = self.bar.callback()
            self.hook.on_train_start(trainer)

    def on_epoch_end(self, trainer, record) -> None:  # noqa: ANN001
        if self.hook is not None:
            self.hook.on_epoch_end(trainer, record)

    def on_train_end(self, trainer, result) -> None:  # noqa: ANN001
        if self.bar is not None:
            self.bar.__exit__()
