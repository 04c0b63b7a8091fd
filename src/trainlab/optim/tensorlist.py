"""Tensor stand-ins that let one update function, written for a single tensor, run unchanged on
other paths: TensorList (many tensors, one torch._foreach_* call per method: the multi-tensor
path) and Differentiable (one tensor whose scalar arguments may be tensors: differentiable=True)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class TensorList:
    """A list of tensors whose elementwise methods are torch._foreach_* calls."""

    __slots__ = ("items",)

    def __init__(self, items: Sequence[torch.Tensor]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    # Out-of-place ------------------------------------------------------------------------------
    def neg(self) -> TensorList:
        return TensorList(torch._foreach_neg(self.items))

    def add(self, other: Any, alpha: float = 1) -> TensorList:
        if isinstance(other, TensorList):
            return TensorList(torch._foreach_add(self.items, other.items, alpha=alpha))
        return TensorList(torch._foreach_add(self.items, other))

    def sqrt(self) -> TensorList:
        return TensorList(torch._foreach_sqrt(self.items))

    def addcmul(self, t1: TensorList, t2: TensorList, value: float = 1) -> TensorList:
        return TensorList(torch._foreach_addcmul(self.items, t1.items, t2.items, value=value))

    def clone(self) -> TensorList:
        return TensorList([t.clone() for t in self.items])

    # In place (each returns self, so calls chain like tensor methods) ---------------------------
    def add_(self, other: Any, alpha: float = 1) -> TensorList:
        if isinstance(other, TensorList):
            torch._foreach_add_(self.items, other.items, alpha=alpha)
        else:
            torch._foreach_add_(self.items, other)
        return self

    def mul_(self, scalar: float) -> TensorList:
        torch._foreach_mul_(self.items, scalar)
        return self

    def div_(self, scalar: float) -> TensorList:
        torch._foreach_div_(self.items, scalar)
        return self

    def sqrt_(self) -> TensorList:
        torch._foreach_sqrt_(self.items)
        return self

    def lerp_(self, end: TensorList, weight: float) -> TensorList:
        torch._foreach_lerp_(self.items, end.items, weight)
        return self

    def addcmul_(self, t1: TensorList, t2: TensorList, value: float = 1) -> TensorList:
        torch._foreach_addcmul_(self.items, t1.items, t2.items, value=value)
        return self

    def addcdiv_(self, t1: TensorList, t2: TensorList, value: float = 1) -> TensorList:
        torch._foreach_addcdiv_(self.items, t1.items, t2.items, value=value)
        return self

    def clamp_min_(self, other: TensorList) -> TensorList:
        torch._foreach_clamp_min_(self.items, other.items)
        return self

    def copy_(self, other: TensorList) -> TensorList:
        torch._foreach_copy_(self.items, other.items)
        return self


class Differentiable:
    """One tensor for differentiable=True: every method computes out of place, so autograd keeps
    what it saved (and a tensor lr, betas or weight_decay may stand where torch wants a number);
    the in-place methods of a persistent tensor (a parameter, a state buffer) then write the
    result back with one in-place copy_, as torch.optim's differentiable path updates them."""

    __slots__ = ("t", "persistent")

    def __init__(self, t: torch.Tensor, persistent: bool = True) -> None:
        self.t, self.persistent = t, persistent

    @property
    def v(self) -> torch.Tensor:
        """The value to compute with: a persistent tensor is read through a clone, since
        autograd may save what an operation reads and the tensor is written afterwards."""
        return self.t.clone() if self.persistent else self.t

    def _set(self, value: torch.Tensor) -> Differentiable:
        if self.persistent:
            self.t.copy_(value)
        else:
            self.t = value
        return self

    # Out-of-place ------------------------------------------------------------------------------
    def neg(self) -> Differentiable:
        return Differentiable(-self.v, False)

    def add(self, other: Any, alpha: Any = 1) -> Differentiable:
        return Differentiable(self.v + _scaled(other, alpha), False)

    def sqrt(self) -> Differentiable:
        return Differentiable(self.v.sqrt(), False)

    def addcmul(self, t1: Differentiable, t2: Differentiable, value: Any = 1) -> Differentiable:
        return Differentiable(self.v + t1.v * t2.v * value, False)

    def clone(self) -> Differentiable:
        return Differentiable(self.v.clone(), False)

    # In place (each returns self, so calls chain like tensor methods) ---------------------------
    def add_(self, other: Any, alpha: Any = 1) -> Differentiable:
        return self._set(self.v + _scaled(other, alpha))

    def mul_(self, scalar: Any) -> Differentiable:
        return self._set(self.v * scalar)

    def div_(self, scalar: Any) -> Differentiable:
        return self._set(self.v / scalar)

    def sqrt_(self) -> Differentiable:
        return self._set(self.v.sqrt())

    def lerp_(self, end: Differentiable, weight: Any) -> Differentiable:
        return self._set(self.v + (end.v - self.v) * weight)

    def addcmul_(self, t1: Differentiable, t2: Differentiable, value: Any = 1) -> Differentiable:
        return self._set(self.v + t1.v * t2.v * value)

    def addcdiv_(self, t1: Differentiable, t2: Differentiable, value: Any = 1) -> Differentiable:
        return self._set(self.v + t1.v / t2.v * value)

    def clamp_min_(self, other: Differentiable) -> Differentiable:
        return self._set(torch.maximum(self.v, other.v))

    def copy_(self, other: Differentiable) -> Differentiable:
        return self._set(other.v)


def _scaled(other: Any, alpha: Any) -> Any:
    """alpha * other, where other is a Differentiable, a tensor or a number."""
    x = other.v if isinstance(other, Differentiable) else other
    return x if isinstance(alpha, (int, float)) and alpha == 1 else x * alpha
