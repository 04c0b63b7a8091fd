"""The parameters of a full-batch problem as one real vector x, as L-BFGS and Newton see them: a
complex parameter counts as its real and imaginary parts (torch.view_as_real), as in
torch.optim.LBFGS, and a missing gradient as zeros."""

from __future__ import annotations

from typing import Any

import torch


def as_float(loss: Any) -> float:
    """A closure's loss (a tensor or a number) as a Python float."""
    return float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)


def real_view(t: torch.Tensor) -> torch.Tensor:
    """A complex tensor as real numbers (a trailing dimension of 2), a real one as it is."""
    return torch.view_as_real(t) if t.is_complex() else t


class FlatParams:
    """A list of parameters seen as one vector: read it, move it, save and restore it, and read
    its gradient."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params

    @property
    def numel(self) -> int:
        return sum(real_view(p).numel() for p in self.params)

    def _parts(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(real view of each parameter, the slice of x that belongs to it)."""
        parts, offset = [], 0
        for p in self.params:
            view = real_view(p)
            parts.append((view, x[offset : offset + view.numel()].view_as(view)))
            offset += view.numel()
        if offset != x.numel():
            raise ValueError(f"a vector of {x.numel()} numbers for {offset} parameters")
        return parts

    def get(self) -> torch.Tensor:
        return torch.cat([real_view(p.detach()).reshape(-1) for p in self.params])

    @torch.no_grad()
    def set_(self, x: torch.Tensor) -> None:
        for view, part in self._parts(x):
            view.copy_(part)

    @torch.no_grad()
    def add_(self, t: Any, d: torch.Tensor) -> None:
        """x += t * d (t a number or a 0-d tensor)."""
        for view, part in self._parts(d):
            view.add_(part, alpha=t)

    def save(self) -> list[torch.Tensor]:
        return [p.clone(memory_format=torch.contiguous_format) for p in self.params]

    @torch.no_grad()
    def restore(self, saved: list[torch.Tensor]) -> None:
        for p, value in zip(self.params, saved, strict=True):
            p.copy_(value)

    def grad(self) -> torch.Tensor:
        """The flat gradient: zeros where a parameter has none, sparse gradients made dense."""
        views = []
        for p in self.params:
            if p.grad is None:
                g = torch.zeros_like(p).reshape(-1)
            elif p.grad.is_sparse:
                g = p.grad.to_dense().reshape(-1)
            else:
                g = p.grad.reshape(-1)
            views.append(real_view(g).reshape(-1))
        return torch.cat(views)
