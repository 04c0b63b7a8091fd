"""AdaGrad: per-parameter steps scaled by the history of squared gradients."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch

from trainlab.optim import checks, rules
from trainlab.optim.base import TrainlabOptimizer, scalar_dtype, scalars
from trainlab.optim.diagnostics import dx_of_step


class Adagrad(TrainlabOptimizer):
    """AdaGrad, drop-in for torch.optim.Adagrad (same arguments, defaults and state: `step`,
    `sum`, created at construction as torch does). The sum of squared gradients only grows, so the
    effective step only shrinks: good for convex problems, often too aggressive for deep nets."""

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(group, p, self.state[p])

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("fused", None)

    def _check_group(self, group: dict[str, Any], field: Callable[[str], str]) -> None:
        checks.nonnegative(group["lr_decay"], field("lr_decay"))
        checks.nonnegative(group["weight_decay"], field("weight_decay"))
        checks.nonnegative(group["initial_accumulator_value"], field("initial_accumulator_value"))
        checks.positive(group["eps"], field("eps"))

    def _buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("sum",)

    def _sparse(self, group: dict[str, Any]) -> None:
        """Sparse gradients are taken (densified: the same numbers as torch's sparse update,
        since untouched entries move by 0), without weight decay, as in torch."""
        if group["weight_decay"] != 0:
            raise RuntimeError("weight_decay option is not compatible with sparse gradients")

    def _init_state(self, group: dict[str, Any], param: torch.Tensor, state: dict) -> None:
        init = float(group["initial_accumulator_value"])
        state["step"] = torch.tensor(0.0, dtype=scalar_dtype())
        state["sum"] = torch.full_like(
            param,
            complex(init, init) if param.is_complex() else init,
            memory_format=torch.preserve_format,
        )

    def _hyper(self, group: dict[str, Any], phase: Hashable) -> dict[str, Any]:
        h = self._common(group)
        num = scalars(group)
        # the learning rate decays as 1/t when lr_decay > 0: lr / (1 + (t - 1) * lr_decay)
        h.update(
            eps=num(group["eps"]),
            clr=h["lr"] / (1 + (float(phase) - 1) * num(group["lr_decay"])),
        )
        return h

    _update = staticmethod(rules.adagrad)

    def _inspect(
        self,
        param: torch.Tensor,
        dx: torch.Tensor | None,
        s: dict[str, torch.Tensor],
        h: dict[str, Any],
    ) -> tuple[torch.Tensor | None, dict, dict]:
        step_size = h["clr"] / (s["sum"].sqrt() + h["eps"])
        dx = dx_of_step(dx, h, step_size)
        return (None if dx is None else step_size * dx), {}, {"effective_lr": step_size}
