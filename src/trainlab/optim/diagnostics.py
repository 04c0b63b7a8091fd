"""What the lecture asks you to watch while training, as plain floats: the ratio of update size to
weight size (about 1e-3 is healthy), the norm of the velocity / first moment, the mean effective
per-parameter step size of the adaptive methods. Computed on demand from the optimizer's state, so
the step itself pays nothing for it."""

from __future__ import annotations

import math
from typing import Any

import torch


def _sum_sq(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t, dtype=torch.float64)) ** 2


def _mean(t: torch.Tensor) -> float:
    return float(t.mean(dtype=torch.float64)) if t.numel() else 0.0


def dx_of_step(
    dx: torch.Tensor | None,
    h: dict[str, Any],
    step_size: float | torch.Tensor,
    shift: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """The dx the last step used, from `dx` recomputed afterwards at the moved weights. With the
    L2 penalty dx = +-g + weight_decay * x_before, and x_before = x_after + step_size * dx + shift
    (shift: the part of the update that is not a multiple of dx, e.g. Nesterov's rho * velocity
    times lr), so dx = (+-g + weight_decay * (x_after + shift)) / (1 - weight_decay * step_size)."""
    if dx is None or not h["l2"]:
        return dx
    wd = h["weight_decay"]
    if shift is not None:
        dx = dx.add(shift, alpha=wd)
    return dx / (1 - wd * step_size)


class Watch:
    """Accumulates one param group: norms add up as root-sum-of-squares, means weighted by size."""

    def __init__(self) -> None:
        self.sq: dict[str, float] = {}
        self.weighted: dict[str, float] = {}
        self.numel = 0
        self.update_known = True
        self.count = 0

    def add(
        self,
        param: torch.Tensor,
        update: torch.Tensor | None,
        norms: dict[str, torch.Tensor],
        means: dict[str, torch.Tensor],
    ) -> dict[str, float | None]:
        """Record one parameter; return its own figures."""
        n = param.numel()
        sq = {"param_norm": _sum_sq(param)}
        if update is not None:
            sq["update_norm"] = _sum_sq(update)
        else:
            self.update_known = False
        sq.update({f"{k}_norm": _sum_sq(v) for k, v in norms.items()})
        mean = {k: _mean(v) for k, v in means.items()}
        for k, v in sq.items():
            self.sq[k] = self.sq.get(k, 0.0) + v
        for k, v in mean.items():
            self.weighted[k] = self.weighted.get(k, 0.0) + v * n
        self.numel += n
        self.count += 1
        return _figures({k: math.sqrt(v) for k, v in sq.items()}, mean, update is not None)

    def result(self) -> dict[str, float | None]:
        norms = {k: math.sqrt(v) for k, v in self.sq.items()}
        means = {k: v / self.numel for k, v in self.weighted.items()} if self.numel else {}
        return _figures(norms, means, self.update_known and self.count > 0)


def _figures(
    norms: dict[str, float], means: dict[str, float], update_known: bool
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    ratio = None
    if update_known and norms.get("param_norm", 0.0) > 0:
        ratio = norms["update_norm"] / norms["param_norm"]
    out["update_ratio"] = ratio
    out["update_norm"] = norms.get("update_norm") if update_known else None
    out.update({k: v for k, v in norms.items() if k != "update_norm"})
    out.update(means)
    return out
