"""trainlab: a lab for training neural networks well, the way CS231n lecture 7 teaches, on PyTorch.

Python API: `trainlab.train(config) -> Result`, `trainlab.load_run(dir)`, the optimizers in
`trainlab.optim`, the schedules in `trainlab.schedules`.
"""

__version__ = "0.1.0"

from trainlab.train import Result, load_run, train  # noqa: E402  (rebinds the name `train`)

__all__ = ["Result", "__version__", "load_run", "train"]
