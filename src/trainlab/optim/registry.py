"""Optimizers by name, as configs spell them (`optim.name: adam`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from trainlab.errors import UserError
from trainlab.optim.adagrad import Adagrad
from trainlab.optim.adam import Adam, AdamW
from trainlab.optim.lbfgs import LBFGS
from trainlab.optim.newton import Newton
from trainlab.optim.rmsprop import RMSprop
from trainlab.optim.sgd import SGD

#: name -> (class, defaults the name adds on top of the class's own)
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "sgd": (SGD, {}),
    "momentum": (SGD, {"momentum": 0.9}),  # the lecture's SGD+momentum, rho = 0.9
    "nesterov": (SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (Adagrad, {}),
    "rmsprop": (RMSprop, {}),
    "adam": (Adam, {}),
    "adamw": (AdamW, {}),
    "lbfgs": (LBFGS, {}),
    "newton": (Newton, {}),
}

#: optimizers meant for full-batch, deterministic problems (one step sees the whole data set)
FULL_BATCH = frozenset({"lbfgs", "newton"})


def arguments(name: str) -> list[str]:
    """The keyword arguments optimizer `name` accepts (besides params)."""
    cls, _ = _lookup(name)
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params")]


def _lookup(name: str) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise UserError(
            f"optim.name: unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}"
        )
    return OPTIMIZERS[key]


def create(name: str, params: Any, **kwargs: Any) -> torch.optim.Optimizer:
    """Build optimizer `name` over `params` (tensors, (name, tensor) pairs or param groups);
    kwargs are the class's constructor arguments and override the name's defaults."""
    cls, preset = _lookup(name)
    allowed = arguments(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise UserError(
            f"optim.{unknown[0]}: not an argument of {name}; allowed: {', '.join(allowed)}"
        )
    factory: Callable[..., torch.optim.Optimizer] = cls
    return factory(params, **{**preset, **kwargs})
