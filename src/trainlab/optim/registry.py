"""Optimizers by name, as configs spell them (`optim.name: adam`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from trainlab import names, optimizer_defaults
from trainlab.errors import UserError
from trainlab.optim.adagrad import Adagrad
from trainlab.optim.adam import Adam, AdamW
from trainlab.optim.lbfgs import LBFGS
from trainlab.optim.newton import Newton
from trainlab.optim.rmsprop import RMSprop
from trainlab.optim.sgd import SGD

#: class name (as trainlab.optimizer_defaults writes it) -> the class
CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    cls.__name__: cls for cls in (SGD, Adagrad, RMSprop, Adam, AdamW, LBFGS, Newton)
}

#: name -> (class, the lecture's settings where they differ from the class's own defaults), with
#: exactly the names of trainlab.names.OPTIMIZERS. The classes keep torch.optim's defaults
#: (drop-in); the lecture's settings and every default a config gets are data, in one place:
#: trainlab.optimizer_defaults (the config schemas read them there without importing torch;
#: tests/test_config.py holds its copy of the classes' defaults to their signatures).
#: docs/optimizers.md lists each.
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = names.covers(
    {name: (CLASSES[cls], preset) for name, (cls, preset) in optimizer_defaults.LECTURE.items()},
    names.OPTIMIZERS,
    "trainlab.optim.registry.OPTIMIZERS",
)

#: optimizers meant for full-batch, deterministic problems (one step sees the whole data set)
FULL_BATCH = optimizer_defaults.FULL_BATCH


def arguments(name: str) -> list[str]:
    """The keyword arguments optimizer `name` accepts (besides params)."""
    cls, _ = _lookup(name)
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params")]


def defaults(name: str) -> dict[str, Any]:
    """Every argument of optimizer `name` with its default as a config gets it: the class's
    (torch's) defaults, with the lecture's settings on top (trainlab.optimizer_defaults)."""
    _lookup(name)
    return optimizer_defaults.defaults(name.strip().lower())


def _lookup(name: str) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise UserError(
            f"optim.name: unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}"
        )
    return OPTIMIZERS[key]


def create(name: str, params: Any, **kwargs: Any) -> torch.optim.Optimizer:
    """Build optimizer `name` over `params` (tensors, (name, tensor) pairs or param groups);
    kwargs are the class's constructor arguments and override the name's defaults() (a config's
    optim section already holds them all, so nothing is merged twice). A bad
    argument's message names it as a config does: `optim.lr: ...`."""
    cls, _ = _lookup(name)
    allowed = arguments(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise UserError(
            f"optim.{unknown[0]}: not an argument of {name}; allowed: {', '.join(allowed)}"
        )
    factory: Callable[..., torch.optim.Optimizer] = cls
    try:
        return factory(params, **{**defaults(name), **kwargs})
    except UserError as err:  # the class names the argument; a config calls it optim.<argument>
        message = str(err)
        raise UserError(message if message.startswith("optim.") else f"optim.{message}") from None
