"""The training engine: the trainer, its callbacks and state, run directories, reading runs back.
The `train()` API that drives it lives above, in trainlab.experiments."""

from trainlab.train.run import Run, load_run
from trainlab.train.state import Callback, Result, TrainState
from trainlab.train.trainer import Trainer

__all__ = ["Callback", "Result", "Run", "TrainState", "Trainer", "load_run"]
