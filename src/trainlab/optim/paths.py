"""How an update rule runs over a param group: the for-loop (one tensor at a time; also the
differentiable path), the multi-tensor path (the rule on TensorLists, one torch._foreach_* call
per operation), torch's fused CPU kernel for the rules it computes (kernels.py: SGD, Adagrad,
Adam, AdamW) or the compiled path (the rule compiled into one fused pass per tensor, from the
step compiled.compile_from gives). The rules themselves (rules.py) know nothing of this layer.

Which path a step takes (choose): the for-loop when foreach=False or differentiable=True; the
multi-tensor path when foreach=True; else compiled from the step TRAINLAB_COMPILE or, under auto,
compiled.compile_from gives (from the first with fused=True); before that (and for updates not
worth compiling) torch's kernel where the rule has one and the tensors fit it, else the
multi-tensor path. Under auto a rule with a kernel never compiles: the kernel runs at the memory
bandwidth from the first step, as the compiled update does after its compile (bench/optim_step.py:
0.9-1.1x per step), so a compile of seconds would not pay back (docs/optimizers.md).

StepPlan caches what a group's step needs between steps, so that a step's own Python work is a
few list comprehensions and one call per compiled chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch

from trainlab.optim import compiled, kernels
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
        kernel: bool = False,
    ) -> None:
        self.ids = tuple(map(id, group["params"]))
        self.params = params
        self.idle = [p for p in group["params"] if p.grad is None]
        self.names = names
        self.phase = phase
        self.counter: torch.Tensor | None = None
        self.start = compile_start(params, kernel)

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


def compile_start(params: list[torch.Tensor], kernel: bool = False) -> int | None:
    """The step from which these parameters' update runs compiled: TRAINLAB_COMPILE's step,
    or under auto compiled.compile_from's (None: never; 0: never, whatever fused says), never
    for a rule with a torch kernel (`kernel`; see the module docstring)."""
    how = compiled.mode()
    if how != "auto":
        return how  # type: ignore[return-value]
    return None if kernel else compiled.compile_from(params)


def choose(
    group: dict[str, Any], compilable: bool, start: int | None, step: int, kernel: bool = False
) -> str:
    """for-loop, foreach, fused (torch's kernel: `kernel` says the rule has one) or compiled:
    compiled from step `start`, or from the first step with fused=True (TRAINLAB_COMPILE=0
    wins); the for-loop when asked or differentiable; foreach when asked."""
    if group.get("foreach") is False or group.get("differentiable"):
        return "for-loop"
    if group.get("foreach"):
        return "foreach"
    eager = "fused" if kernel else "foreach"
    if not compilable or not compiled.available() or start == 0:
        return eager
    if group.get("fused") or (start is not None and step >= start):
        return "compiled"
    return eager


def compiles_later(group: dict[str, Any], path: str, start: int | None, step: int) -> bool:
    """Whether a step that took `path` is an eager step before the group's switch to the
    compiled path (step `start`), so that its graphs should be compiling ahead
    (compiled.ahead)."""
    return (
        path in ("foreach", "fused")
        and start is not None
        and 0 < step < start
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
    kernel: Callable[..., None] | None = None,
) -> str:
    """Apply `update` to a group's tensors on `path`; returns the path taken (the compiled path
    falls back to the kernel or multi-tensor one where compiling is impossible, the kernel to the
    multi-tensor one where the tensors do not fit it). `memo`: the group's own dict for the
    compiled plan; `kernel`: torch's kernel for this step, called as kernel(params, grads,
    buffers)."""
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
        path = "fused" if kernel is not None else "foreach"
    if path == "fused":
        if kernel is not None and kernels.fits(params, grads, buffers):
            kernel(params, grads, buffers)
            return path
        path = "foreach"
    if path == "foreach":
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
