"""The lecture's optimizers as drop-in replacements for torch.optim.

SGD (with momentum and Nesterov), Adagrad, RMSprop, Adam and AdamW take torch.optim's arguments
and defaults, keep torch's state keys (a checkpoint moves both ways), work with torch's LR
schedulers, run fused on large models from a step fixed by the parameters (see compiled.py) and
report what the lecture says to watch through `optimizer.diagnostics()`. Their update rules are
in rules.py, one pure function each; paths.py runs them (for-loop, multi-tensor, compiled).
Newton and LBFGS are for small full-batch problems and take torch.optim.LBFGS's closure API.
`create(name, params, **kwargs)` builds one by its config name, with the lecture's defaults
(registry.py).
"""

from trainlab.optim.adagrad import Adagrad
from trainlab.optim.adam import Adam, AdamW
from trainlab.optim.base import TrainlabOptimizer
from trainlab.optim.lbfgs import LBFGS
from trainlab.optim.newton import Newton
from trainlab.optim.registry import FULL_BATCH, OPTIMIZERS, arguments, create
from trainlab.optim.rmsprop import RMSprop
from trainlab.optim.sgd import SGD

NAMES = tuple(OPTIMIZERS)

__all__ = [
    "Adagrad",
    "Adam",
    "AdamW",
    "FULL_BATCH",
    "LBFGS",
    "NAMES",
    "Newton",
    "OPTIMIZERS",
    "RMSprop",
    "SGD",
    "TrainlabOptimizer",
    "arguments",
    "create",
]
