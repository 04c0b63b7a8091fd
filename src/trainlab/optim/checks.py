"""Checks of optimizer arguments: a bad value raises UserError (a ValueError, as torch.optim's)
naming the argument, with torch.optim's own words, e.g. "lr: Invalid learning rate: -1; must be
a finite number >= 0". The config layer puts `optim.` in front (registry.create)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from trainlab.errors import UserError

#: torch.optim's words for a bad value of an argument (its tests match them)
TORCH_WORDS = {
    "lr": "Invalid learning rate",
    "eps": "Invalid epsilon value",
    "momentum": "Invalid momentum value",
    "weight_decay": "Invalid weight_decay value",
    "alpha": "Invalid alpha value",
    "lr_decay": "Invalid lr_decay value",
    "initial_accumulator_value": "Invalid initial_accumulator_value value",
    "betas.0": "Invalid beta parameter at index 0",
    "betas.1": "Invalid beta parameter at index 1",
}


def _refuse(field: str, value: Any, allowed: str) -> UserError:
    words = TORCH_WORDS.get(field.rsplit("].", 1)[-1])
    said = f"{words}: {value}; " if words else f"got {value!r}; "
    return UserError(f"{field}: {said}must be {allowed}")


def as_float(value: Any, field: str) -> float:
    """`value` as a Python float (a 1-element tensor is accepted, as torch.optim does for lr)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            name = field.rsplit("].", 1)[-1]
            raise UserError(
                f"{field}: Tensor {name} must be 1-element, got shape {tuple(value.shape)}"
            )
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _refuse(field, value, "a number")
    return float(value)


def finite(
    value: Any,
    field: str,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite number in the interval [low, high] (open ends where asked)."""
    x = as_float(value, field)
    lo_ok = x > low if low_open else x >= low
    hi_ok = x < high if high_open else x <= high
    if not (math.isfinite(x) and lo_ok and hi_ok):
        raise _refuse(field, value, f"a finite number {_interval(low, high, low_open, high_open)}")
    return x


def nonnegative(value: Any, field: str) -> float:
    return finite(value, field, low=0.0)


def positive(value: Any, field: str) -> float:
    return finite(value, field, low=0.0, low_open=True)


def beta(value: Any, field: str) -> float:
    """An exponential-average coefficient: in [0, 1)."""
    return finite(value, field, low=0.0, high=1.0, high_open=True)


def betas(value: Any, field: str) -> tuple[float, float]:
    """(beta1, beta2), each in [0, 1): both numbers or both tensors, as torch.optim asks."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise _refuse(field, value, "a pair (beta1, beta2) in [0, 1)")
    if isinstance(value[0], torch.Tensor) != isinstance(value[1], torch.Tensor):
        raise UserError(f"{field}: betas must be either both floats or both Tensors")
    return beta(value[0], f"{field}.0"), beta(value[1], f"{field}.1")


def flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise _refuse(field, value, "true or false")
    return value


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if math.isinf(high):
        return f"> {low:g}" if low_open else f">= {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
