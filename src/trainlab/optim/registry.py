"""Optimizers by name, as configs spell them (`optim.name: adam`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from trainlab import names
from trainlab.errors import UserError
from trainlab.optim.adagrad import Adagrad
from trainlab.optim.adam import Adam, AdamW
from trainlab.optim.lbfgs import LBFGS
from trainlab.optim.newton import Newton
from trainlab.optim.rmsprop import RMSprop
from trainlab.optim.sgd import SGD

#: name -> (class, the lecture's settings where they differ from the class's own defaults), with
#: exactly the names of trainlab.names.OPTIMIZERS. The classes keep torch.optim's defaults
#: (drop-in); the lecture's settings are merged onto them in one place, defaults(), which the
#: config schemas and create() both read. docs/optimizers.md lists each.
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = names.covers(
    {
        "sgd": (SGD, {"lr": 1e-2}),  # torch: 1e-3
        "momentum": (SGD, {"lr": 1e-2, "momentum": 0.9}),  # the lecture's rho = 0.9; torch: 0
        "nesterov": (SGD, {"lr": 1e-2, "momentum": 0.9, "nesterov": True}),
        "adagrad": (Adagrad, {}),
        "rmsprop": (RMSprop, {"lr": 1e-3}),  # the lecture's RMSProp lr; torch: 1e-2
        "adam": (Adam, {}),
        "adamw": (AdamW, {}),
        "lbfgs": (LBFGS, {"line_search_fn": "strong_wolfe"}),  # torch: None (fixed step lr)
        "newton": (Newton, {"damping": 1e-4}),  # keeps the Hessian invertible; class: 0
    },
    names.OPTIMIZERS,
    "trainlab.optim.registry.OPTIMIZERS",
)

#: optimizers meant for full-batch, deterministic problems (one step sees the whole data set)
FULL_BATCH = frozenset(names.FULL_BATCH_OPTIMIZERS)


def arguments(name: str) -> list[str]:
    """The keyword arguments optimizer `name` accepts (besides params)."""
    cls, _ = _lookup(name)
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params")]


def defaults(name: str) -> dict[str, Any]:
    """Every argument of optimizer `name` with its default as a config gets it: the class's
    (torch's) defaults, with the lecture's settings on top."""
    cls, preset = _lookup(name)
    params = inspect.signature(cls.__init__).parameters
    own = {k: p.default for k, p in params.items() if k not in ("self", "params")}
    return {**own, **preset}


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
