"""Training: the loop and its callbacks, run directories, reading runs back."""

from trainlab.train.loop import Callback, Result, Trainer, train
from trainlab.train.run import Run, evaluate_run, load_run

__all__ = ["Callback", "Result", "Run", "Trainer", "evaluate_run", "load_run", "train"]
