"""Above the engine: what runs the trainer once or many times (the `train()` API, ensembles,
transfer, the lr range test)."""

from trainlab.experiments.api import evaluate_run, train

__all__ = ["evaluate_run", "train"]
