"""Checks of optimizer arguments: a bad value raises UserError naming the field and what is
allowed, e.g. "optim.lr: must be a finite number >= 0, got -1"."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from trainlab.errors import UserError


def as_float(value: Any, field: str) -> float:
    """`value` as a Python float (a 1-element tensor is accepted, as torch.optim does for lr)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise UserError(
                f"{field}: a tensor value must have 1 element, got shape {tuple(value.shape)}"
            )
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"{field}: must be a number, got {value!r}")
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
        allowed = _interval(low, high, low_open, high_open)
        raise UserError(f"{field}: must be a finite number {allowed}, got {value!r}")
    return x


def nonnegative(value: Any, field: str) -> float:
    return finite(value, field, low=0.0)


def positive(value: Any, field: str) -> float:
    return finite(value, field, low=0.0, low_open=True)


def beta(value: Any, field: str) -> float:
    """An exponential-average coefficient: in [0, 1)."""
    return finite(value, field, low=0.0, high=1.0, high_open=True)


def betas(value: Any, field: str) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise UserError(f"{field}: must be a pair (beta1, beta2) in [0, 1), got {value!r}")
    return beta(value[0], f"{field}.0"), beta(value[1], f"{field}.1")


def flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{field}: must be true or false, got {value!r}")
    return value


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if math.isinf(high):
        return f"> {low:g}" if low_open else f">= {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
