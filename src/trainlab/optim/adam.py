"""Adam (momentum + RMSProp + bias correction) and AdamW (Adam with decoupled weight decay)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch

from trainlab.errors import UserError
from trainlab.optim import checks, rules
from trainlab.optim.base import TrainlabOptimizer, scalars


class Adam(TrainlabOptimizer):
    """Adam, drop-in for torch.optim.Adam (same arguments and defaults; state `step`, `exp_avg`,
    `exp_avg_sq`, `max_exp_avg_sq` with amsgrad). The lecture's defaults are torch's: beta1 0.9,
    beta2 0.999, eps 1e-8, lr 1e-3 (or 5e-4)."""

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("fused", None)

    def _check_group(self, group: dict[str, Any], field: Callable[[str], str]) -> None:
        betas = group["betas"]
        checks.betas(betas, field("betas"))
        if group.get("foreach") and not group.get("capturable"):  # as torch.optim.Adam says
            if isinstance(group["lr"], torch.Tensor):
                raise UserError(
                    f"{field('lr')}: lr as a Tensor is not supported for capturable=False "
                    "and foreach=True"
                )
            if isinstance(betas[0], torch.Tensor):
                raise UserError(
                    f"{field('betas')}: betas[0] as a Tensor is not supported for "
                    "capturable=False and foreach=True"
                )
        checks.positive(group["eps"], field("eps"))
        checks.nonnegative(group["weight_decay"], field("weight_decay"))
        checks.flag(group["amsgrad"], field("amsgrad"))
        checks.flag(group["decoupled_weight_decay"], field("decoupled_weight_decay"))

    def _buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def _hyper(self, group: dict[str, Any], phase: Hashable) -> dict[str, Any]:
        h = self._common(group)
        num = scalars(group)
        beta1, beta2 = (num(b) for b in group["betas"])
        t = float(phase)
        decoupled = bool(group["decoupled_weight_decay"]) and h["l2"]
        h.update(
            l2=h["l2"] and not decoupled,
            decoupled=decoupled,
            decay_factor=1 - h["lr"] * h["weight_decay"],
            beta2=beta2,
            one_minus_beta1=1 - beta1,
            one_minus_beta2=1 - beta2,
            eps=num(group["eps"]),
            amsgrad=bool(group["amsgrad"]),
            # bias correction: first_unbias = first_moment / (1 - beta1**t), second alike
            step_size=h["lr"] / (1 - beta1**t),
            bias_correction2_sqrt=(1 - beta2**t) ** 0.5,
        )
        return h

    _update = staticmethod(rules.adam)

    def _inspect(
        self,
        param: torch.Tensor,
        dx: torch.Tensor | None,
        s: dict[str, torch.Tensor],
        h: dict[str, Any],
    ) -> tuple[torch.Tensor | None, dict, dict]:
        denom = rules.second_moment(s, h).sqrt() / h["bias_correction2_sqrt"] + h["eps"]
        adam_step = s["exp_avg"] * h["step_size"] / denom
        update = adam_step
        if h["decoupled"]:  # the decay acted on the weights before the step: recover them
            update = adam_step + (param + adam_step) * ((1 - h["decay_factor"]) / h["decay_factor"])
        # effective step per parameter: learning_rate / (sqrt(second_unbias) + eps)
        return update, {"first_moment": s["exp_avg"]}, {"effective_lr": h["lr"] / denom}


class AdamW(Adam):
    """AdamW, drop-in for torch.optim.AdamW: weight decay shrinks the weights directly instead of
    entering the gradient, so it is not rescaled by the second moment (default 1e-2)."""

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
