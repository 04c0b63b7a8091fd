"""TensorBoard event files (`train.tensorboard: true`), for users who live in TensorBoard.

Writes the per-step training loss and the per-epoch record (losses, accuracies, lr, update ratio)
to <run>/tensorboard/; `tensorboard --logdir runs` shows every run side by side.
"""

from __future__ import annotations

from typing import Any

from trainlab.engine.state import Result
from trainlab.engine.trainer import Callback, Trainer
from trainlab.errors import UserError


class TensorBoardLogger(Callback):
    """Writes the step losses and epoch records as TensorBoard scalars."""

    def __init__(self) -> None:
        self.writer = None

    def on_train_start(self, trainer: Trainer) -> None:
        try:  # optional package (trainlab[tensorboard]), imported only when asked for
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError(
                "train.tensorboard: needs the tensorboard package "
                "(pip install 'trainlab[tensorboard]')"
            ) from None
        self.writer = SummaryWriter(
            log_dir=str(trainer.run / "tensorboard"), purge_step=trainer.state.step + 1 or None
        )

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        self.writer.add_scalar("train/step_loss", loss, trainer.state.step)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if key not in ("epoch", "step", "seconds") and value is not None:
                split, _, name = key.partition("_")
                tag = f"{split}/{name}" if split in ("train", "val") else f"optim/{key}"
                self.writer.add_scalar(tag, value, record["epoch"])
        self.writer.flush()

    def on_train_end(self, trainer: Trainer, result: Result) -> None:
        if self.writer is not None:
            self.writer.add_scalar("test/accuracy", result.test_accuracy, trainer.state.epoch)
            self.writer.close()
