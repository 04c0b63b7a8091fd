"""RMSProp: AdaGrad with a leaky (exponentially decaying) sum of squared gradients."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch

from trainlab.optim import checks, rules
from trainlab.optim.base import TrainlabOptimizer, scalars
from trainlab.optim.diagnostics import dx_of_step


class RMSprop(TrainlabOptimizer):
    """RMSProp, drop-in for torch.optim.RMSprop (same arguments and defaults; state `step`,
    `square_avg`, `momentum_buffer` with momentum, `grad_avg` when centered). `alpha` is the
    lecture's decay_rate (0.9 or 0.99)."""

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "capturable": capturable,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("momentum", 0)
            group.setdefault("centered", False)
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("capturable", False)

    def _check_group(self, group: dict[str, Any], field: Callable[[str], str]) -> None:
        checks.finite(group["alpha"], field("alpha"), low=0.0, high=1.0)
        checks.positive(group["eps"], field("eps"))
        checks.nonnegative(group["weight_decay"], field("weight_decay"))
        checks.nonnegative(group["momentum"], field("momentum"))
        checks.flag(group["centered"], field("centered"))

    def _buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        return (
            ("square_avg",)
            + (("momentum_buffer",) if group["momentum"] > 0 else ())
            + (("grad_avg",) if group["centered"] else ())
        )

    def _hyper(self, group: dict[str, Any], phase: Hashable) -> dict[str, Any]:
        h = self._common(group)
        num = scalars(group)
        alpha, momentum = num(group["alpha"]), num(group["momentum"])
        h.update(
            alpha=alpha,
            one_minus_alpha=1 - alpha,
            eps=num(group["eps"]),
            momentum=momentum,
            momentum_on=bool(momentum > 0),
            centered=bool(group["centered"]),
        )
        return h

    _update = staticmethod(rules.rmsprop)

    def _inspect(
        self,
        param: torch.Tensor,
        dx: torch.Tensor | None,
        s: dict[str, torch.Tensor],
        h: dict[str, Any],
    ) -> tuple[torch.Tensor | None, dict, dict]:
        step_size = h["lr"] / rules.rms(s, h)
        if h["momentum_on"]:
            velocity = s["momentum_buffer"]
            return velocity * h["lr"], {"velocity": velocity}, {"effective_lr": step_size}
        dx = dx_of_step(dx, h, step_size)
        return (None if dx is None else step_size * dx), {}, {"effective_lr": step_size}
