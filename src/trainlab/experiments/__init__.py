"""Above the engine: what runs the trainer once or many times (the `train()` API, ensembles,
transfer, the lr range test)."""

from trainlab.lazy import exports

# loaded on first use, so `trainlab.experiments.transfer.options` (the CLI's flags) loads no torch
__all__ = ["evaluate_run", "train"]
__getattr__, __dir__ = exports(__name__, dict.fromkeys(__all__, f"{__name__}.api"))
