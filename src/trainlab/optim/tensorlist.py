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
    """One tensor whose methods accept tensors where torch wants Python numbers (the `alpha` of
    add_, the `value` of addcmul_/addcdiv_): differentiable=True keeps a tensor lr, betas or
    weight_decay in the graph, so the same update function runs with autograd on them."""

    __slots__ = ("t",)

    def __init__(self, t: torch.Tensor) -> None:
        self.t = t

    # Out-of-place ------------------------------------------------------------------------------
    def neg(self) -> Differentiable:
        return Differentiable(self.t.neg())

    def add(self, other: Any, alpha: Any = 1) -> Differentiable:
        if isinstance(alpha, torch.Tensor):
            return Differentiable(self.t + _scaled(other, alpha))
        return Differentiable(self.t.add(other.t, alpha=alpha))

    def sqrt(self) -> Differentiable:
        return Differentiable(self.t.sqrt())

    def addcmul(self, t1: Differentiable, t2: Differentiable, value: Any = 1) -> Differentiable:
        if isinstance(value, torch.Tensor):
            return Differentiable(self.t + t1.t * t2.t * value)
        return Differentiable(self.t.addcmul(t1.t, t2.t, value=value))

    def clone(self) -> Differentiable:
        return Differentiable(self.t.clone())

    # In place ----------------------------------------------------------------------------------
    def add_(self, other: Any, alpha: Any = 1) -> Differentiable:
        if isinstance(alpha, torch.Tensor):
            self.t.add_(_scaled(other, alpha))
        else:
            self.t.add_(other.t if isinstance(other, Differentiable) else other, alpha=alpha)
        return self

    def mul_(self, scalar: Any) -> Differentiable:
        self.t.mul_(scalar)
        return self

    def div_(self, scalar: Any) -> Differentiable:
        self.t.div_(scalar)
        return self

    def sqrt_(self) -> Differentiable:
        self.t.sqrt_()
        return self

    def lerp_(self, end: Differentiable, weight: Any) -> Differentiable:
        if isinstance(weight, torch.Tensor):
            self.t.add_((end.t - self.t) * weight)
        else:
            self.t.lerp_(end.t, weight)
        return self

    def addcmul_(self, t1: Differentiable, t2: Differentiable, value: Any = 1) -> Differentiable:
        if isinstance(value, torch.Tensor):
            self.t.add_(t1.t * t2.t * value)
        else:
            self.t.addcmul_(t1.t, t2.t, value=value)
        return self

    def addcdiv_(self, t1: Differentiable, t2: Differentiable, value: Any = 1) -> Differentiable:
        if isinstance(value, torch.Tensor):
            self.t.add_(t1.t / t2.t * value)
        else:
            self.t.addcdiv_(t1.t, t2.t, value=value)
        return self

    def clamp_min_(self, other: Differentiable) -> Differentiable:
        self.t.copy_(torch.maximum(self.t, other.t))
        return self

    def copy_(self, other: Differentiable) -> Differentiable:
        self.t.copy_(other.t)
        return self


def _scaled(other: Any, alpha: torch.Tensor) -> Any:
    """alpha * other, where other is a Differentiable, a tensor or a number."""
    return (other.t if isinstance(other, Differentiable) else other) * alpha
