"""The parameters of a full-batch problem as one flat vector x, and the closure's loss and gradient
as functions of x: what L-BFGS and Newton work with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from trainlab.errors import UserError


def as_float(loss: Any) -> float:
    """A closure's loss (a tensor or a number) as a Python float."""
    return float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)


class FlatParams:
    """A view of a list of parameters as one vector: read it, move it, evaluate the closure."""

    def __init__(self, params: list[torch.Tensor], owner: str) -> None:
        if any(p.is_complex() for p in params):
            raise UserError(f"optim.name: {owner} works on real parameters only")
        self.params = params
        self.numel = sum(p.numel() for p in params)

    def _split(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [
            part.view_as(p)
            for part, p in zip(torch.split(x, [p.numel() for p in self.params]), self.params)
        ]

    def get(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    @torch.no_grad()
    def set_(self, x: torch.Tensor) -> None:
        for p, part in zip(self.params, self._split(x)):
            p.copy_(part)

    @torch.no_grad()
    def add_(self, t: float, d: torch.Tensor) -> None:
        """x += t * d."""
        for p, part in zip(self.params, self._split(d)):
            p.add_(part, alpha=t)

    def grad(self) -> torch.Tensor:
        return torch.cat(
            [
                (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                for p in self.params
            ]
        )

    def evaluate(self, closure: Callable[[], Any]) -> tuple[Any, float, torch.Tensor]:
        """Run the closure (it zeroes the gradients, computes the loss, calls backward); return
        (the loss it returned, that loss as a float, the flat gradient)."""
        with torch.enable_grad():
            loss = closure()
        return loss, as_float(loss), self.grad().detach()
