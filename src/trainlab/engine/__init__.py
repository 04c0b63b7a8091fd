"""The training engine: the trainer, its callbacks and state, run directories, reading runs back.
The `train()` API that drives it lives above, in trainlab.experiments."""

from trainlab.engine.run import Run, load_run
from trainlab.engine.state import Result, TrainState
from trainlab.engine.trainer import Callback, Trainer

__all__ = ["Callback", "Result", "Run", "TrainState", "Trainer", "load_run"]
