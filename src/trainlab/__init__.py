"""trainlab: a lab for training neural networks well, the way CS231n lecture 7 teaches, on PyTorch.

Python API: `trainlab.train(config) -> Result`, `trainlab.load_run(dir)`, the optimizers in
`trainlab.optim`, the schedules in `trainlab.schedules`.
"""

from trainlab.engine import Callback, Result, load_run  # noqa: E402
from trainlab.version import __version__

# isort: split
from trainlab.experiments import train  # noqa: E402  (last: rebinds the name `train`)

__all__ = ["Callback", "Result", "__version__", "load_run", "train"]
