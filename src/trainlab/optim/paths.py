"""How an update rule runs over a param group: the for-loop (one tensor at a time; also the
differentiable path), the multi-tensor path (the rule on TensorLists, one torch._foreach_* call
per operation; on the CPU over cache-sized pieces of the tensors in turn: blocks.py) or the
compiled path (the rule compiled into one fused pass per tensor, from the step
compiled.compile_from gives; its graphs compile ahead, in the background, during the multi-tensor
steps before it: compiled.ahead). The rules themselves (rules.py) know nothing of this layer.

StepPlan caches what a group's step needs between steps, so that a step's own Python work is a
few list comprehensions and one call per compiled chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch

from trainlab.optim import blocks, compiled
from trainlab.optim.tensorlist import Differentiable, TensorList


class StepPlan:
    """What a param group's step needs, kept between steps: the parameters that have gradients
    (`params`; `idle`: those that have none), their state's buffer names and the phase (the step
    number) they all share. Built by a full step; a later step uses it while the group still has
    the same parameters in the same order, exactly these have gradients, the buffer names are the
    same and every state still holds its buffers. add_param_group and load_state_dict drop it.
    `start`: the step from which the group runs compiled (TRAINLAB_COMPILE, read when the plan is
    made: reading the environment costs microseconds; see compiled.py).
    The step number is then kept here, in Python (no .item() per parameter per step), and the
    state's `step` tensors become 0-d views of one small tensor, `counter`, advanced by one add_
    (a multi-tensor add over 0-d CPU tensors costs ~2 us per tensor; torch.optim accepts such
    views, also through a state_dict)."""

    __slots__ = ("ids", "params", "idle", "names", "phase", "counter", "start")

    def __init__(
        self,
        group: dict[str, Any],
        params: list[torch.Tensor],
        names: tuple[str, ...],
        phase: Hashable,
    ) -> None:
        self.ids = tuple(map(id, group["params"]))
        self.params = params
        self.idle = [p for p in group["params"] if p.grad is None]
        self.names = names
        self.phase = phase
        self.counter: torch.Tensor | None = None
        self.start = compile_start(params)

    def share_steps(self, states: list[dict]) -> None:
        """Make the states' `step` tensors views of one tensor (when all are 0-d CPU tensors of
        one dtype), so that a step advances them all with one add_."""
        steps = [s.get("step") for s in states]
        if not steps or not all(
            isinstance(t, torch.Tensor)
            and t.dim() == 0
            and t.device.type == "cpu"
            and t.dtype == steps[0].dtype
            for t in steps
        ):
            return
        counter = torch.stack(steps)  # type: ignore[arg-type]
        for i, s in enumerate(states):
            s["step"] = counter[i]
        self.counter = counter


def compile_start(params: list[torch.Tensor]) -> int | None:
    """The step from which these parameters' update runs compiled: TRAINLAB_COMPILE's step,
    or compiled.compile_from's under auto (None: never; 0: never, whatever fused says)."""
    how = compiled.mode()
    return compiled.compile_from(params) if how == "auto" else how  # type: ignore[return-value]


def choose(group: dict[str, Any], compilable: bool, start: int | None, step: int) -> str:
    """for-loop, foreach or compiled: compiled from step `start`, or from the first step with
    fused=True (TRAINLAB_COMPILE=0 wins); the for-loop when asked or differentiable."""
    if group.get("foreach") is False or group.get("differentiable"):
        return "for-loop"
    if group.get("foreach") or not compilable or not compiled.available() or start == 0:
        return "foreach"
    if group.get("fused") or (start is not None and step >= start):
        return "compiled"
    return "foreach"


def compiles_later(group: dict[str, Any], path: str, start: int | None, step: int) -> bool:
    """Whether a step that took `path` is a multi-tensor step before the group's switch to the
    compiled path (step `start`), at most compiled.AHEAD_STEPS before it, so that its graphs
    should be compiling ahead (compiled.ahead)."""
    return (
        path == "foreach"
        and start is not None
        and max(1, start - compiled.AHEAD_STEPS) <= step < start
        and not group.get("foreach")
        and compiled.available()
    )


def run(
    update: Callable[..., None],
    path: str,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    buffers: dict[str, list[torch.Tensor]],
    h: dict[str, Any],
    memo: dict,
    differentiable: bool = False,
    fusible: bool = True,
) -> str:
    """Apply `update` to a group's tensors on `path`; returns the path taken (the compiled path
    falls back to the multi-tensor one where compiling is impossible). `memo`: the group's own
    dict for the compiled plan and the multi-tensor path's cut. `fusible`: whether the update
    gains from fusing its operations (the optimizer's _compilable: not plain SGD, one add_); the
    multi-tensor path runs in cache-sized blocks only then (blocking one operation only adds
    calls: plain SGD measured 5-10% slower blocked)."""
    if path == "compiled":
        left = compiled.run(update, params, grads, buffers, h, memo)
        if len(left) < len(params):
            if left:  # the small tensors: on the multi-tensor path
                update(
                    TensorList([params[i] for i in left]),
                    TensorList([grads[i] for i in left]),
                    {n: TensorList([b[i] for i in left]) for n, b in buffers.items()},
                    h,
                )
            return "compiled"
        path = "foreach"
    if path == "foreach":
        if fusible:
            blocks.run(update, params, grads, buffers, h, memo)
        else:
            update(
                TensorList(params),
                TensorList(grads),
                {n: TensorList(b) for n, b in buffers.items()},
                h,
            )
        return path
    wrap: Callable[[torch.Tensor], Any] = Differentiable if differentiable else _as_is
    for i, p in enumerate(params):
        update(wrap(p), wrap(grads[i]), {n: wrap(b[i]) for n, b in buffers.items()}, h)
    return path


def _as_is(t: torch.Tensor) -> torch.Tensor:
    return t
