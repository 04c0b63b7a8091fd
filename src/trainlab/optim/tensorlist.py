"""TensorList: many tensors that answer the tensor methods our updates use, one torch._foreach_*
call each. It lets one update function, written for a single tensor, run over all the tensors of a
param group at once (the multi-tensor path) without being written a second time."""

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
