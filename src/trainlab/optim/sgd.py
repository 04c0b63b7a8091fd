"""SGD, SGD with momentum and Nesterov momentum: torch.optim.SGD's arguments and state."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch

from trainlab.errors import UserError
from trainlab.optim import checks, rules
from trainlab.optim.base import TrainlabOptimizer, scalars
from trainlab.optim.diagnostics import dx_of_step

#: the state_dict's key for the groups' step counts (SGD's state has none; see SGD._count)
STEPS_KEY = "trainlab_group_steps"


class SGD(TrainlabOptimizer):
    """Stochastic gradient descent, optionally with momentum (velocity) and Nesterov's look-ahead.

    Drop-in for torch.optim.SGD (same arguments and defaults, state key `momentum_buffer`, none
    without momentum). The lecture's velocity starts at 0, so its first value is the first dx;
    torch's convention (first velocity = dx, dampening skipped once) is the same thing.
    """

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            group.setdefault("fused", False)

    def _check_group(self, group: dict[str, Any], field: Callable[[str], str]) -> None:
        momentum = checks.nonnegative(group["momentum"], field("momentum"))
        dampening = checks.finite(group["dampening"], field("dampening"))
        checks.nonnegative(group["weight_decay"], field("weight_decay"))
        if checks.flag(group["nesterov"], field("nesterov")) and (momentum <= 0 or dampening != 0):
            raise UserError(
                f"{field('nesterov')}: Nesterov momentum requires a momentum and zero "
                f"dampening (momentum > 0, dampening 0), got momentum={momentum:g}, "
                f"dampening={dampening:g}"
            )

    def _keeps_state(self, group: dict[str, Any]) -> bool:
        return group["momentum"] != 0

    def _buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _sparse(self, group: dict[str, Any]) -> None:
        """Sparse gradients are taken (densified: the same numbers as torch's sparse update)."""

    def _count(self, group: dict[str, Any], phase: Hashable) -> int:
        """torch's SGD state has no step count, so each group's is kept here and saved beside
        torch's keys in the state_dict (STEPS_KEY; torch.optim.SGD ignores it)."""
        return self._steps.get(self._index(group), 0)

    def _tick(self, group: dict[str, Any]) -> None:
        i = self._index(group)
        self._steps[i] = self._steps.get(i, 0) + 1

    def _index(self, group: dict[str, Any]) -> int:
        return next(i for i, g in enumerate(self.param_groups) if g is group)

    def _runtime(self) -> None:
        super()._runtime()
        self.__dict__.setdefault("_steps", {})  # group index -> its steps so far

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        out[STEPS_KEY] = [self._steps.get(i, 0) for i in range(len(self.param_groups))]
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._steps = dict(enumerate(state_dict.get(STEPS_KEY, ())))

    def _prepare(
        self, group: dict[str, Any], params: list[torch.Tensor], states: list[dict]
    ) -> list[Hashable]:
        """No step count in the state: the phase says whether the velocity is new (its first
        step); the group's own count goes up."""
        self._tick(group)
        if group["momentum"] == 0:
            return [False] * len(params)
        fresh = []
        for p, state in zip(params, states):
            new = state.get("momentum_buffer") is None
            if new:
                state["momentum_buffer"] = torch.empty_like(p, memory_format=torch.preserve_format)
            fresh.append(new)
        return fresh

    def _advance(self, group: dict[str, Any], plan: Any, states: list[dict]) -> Hashable:
        """On the cached plan the velocity exists already: no first step."""
        self._tick(group)
        return False

    def _diag_phase(self, state: dict) -> Hashable:
        return False

    def _compilable(self, h: dict[str, Any]) -> bool:
        """Plain SGD is one multi-tensor add_ already, at memory speed: nothing to fuse. The
        velocity's first step (a copy) is not worth a graph of its own either."""
        return (h["momentum_on"] or h["l2"] or h["maximize"]) and not h["first"]

    def _hyper(self, group: dict[str, Any], phase: Hashable) -> dict[str, Any]:
        h = self._common(group)
        num = scalars(group)
        momentum = num(group["momentum"])
        h.update(
            momentum=momentum,
            momentum_on=bool(momentum != 0),
            nesterov=bool(group["nesterov"]),
            one_minus_dampening=1 - num(group["dampening"]),
            first=bool(phase),
        )
        return h

    _update = staticmethod(rules.sgd)

    def _inspect(
        self,
        param: torch.Tensor,
        dx: torch.Tensor | None,
        s: dict[str, torch.Tensor],
        h: dict[str, Any],
    ) -> tuple[torch.Tensor | None, dict, dict]:
        lr = h["lr"]
        if not h["momentum_on"]:
            dx = dx_of_step(dx, h, lr)
            return (None if dx is None else dx * lr), {}, {}
        velocity = s["momentum_buffer"]
        if h["nesterov"]:  # x_before = x_after + lr * dx + lr * rho * velocity
            dx = dx_of_step(dx, h, lr, velocity * (lr * h["momentum"]))
            update = None if dx is None else dx.add(velocity, alpha=h["momentum"]) * lr
        else:
            update = velocity * h["lr"]
        return update, {"velocity": velocity}, {}
