"""trainlab: a lab for training neural networks well, the way CS231n lecture 7 teaches, on PyTorch.

The Python API, one front door (each name is the Python form of a CLI command; see
trainlab.api for the table): `train`, `evaluate`, `load_run`, `search_config`, `optimize`,
`compare`, `ensemble`, `transfer`, `lr_find`, with `Result`, `Run` and `Callback`; the optimizer
classes in `trainlab.optim`, the schedules in `trainlab.schedules`.

`import trainlab` is cheap: the names load (with torch) on first use.
"""

from trainlab.lazy import exports
from trainlab.version import __version__ as __version__

API = (
    "Callback",
    "Result",
    "Run",
    "compare",
    "ensemble",
    "evaluate",
    "load_run",
    "lr_find",
    "optimize",
    "search_config",
    "train",
    "transfer",
)
__all__ = [*API, "__version__"]

# `import trainlab` loads nothing else: each name imports trainlab.api (and torch) on first use
__getattr__, __dir__ = exports(__name__, dict.fromkeys(API, "trainlab.api"))
