"""The base of our first-order optimizers: torch.optim.Optimizer's param groups, state_dict and
hooks, plus what every optimizer of the lecture shares, written once here:

- arguments checked before `params`, with torch.optim's words and exception types (checks.py);
- lazy per-parameter state with torch's keys (a float32 0-d `step` tensor and the buffers), so
  checkpoints move between torch.optim and trainlab.optim (a `step` saved as a plain number is
  converted on load, as torch does);
- the step: gradients collected (sparse ones densified for SGD and Adagrad, which gives torch's
  numbers; complex parameters as pairs of reals), state created, the step count advanced, then
  the optimizer's rule (rules.py) run on the path paths.py picks; differentiable=True runs it
  with autograd on and the hyperparameters as given (a tensor lr, betas or weight_decay gets a
  gradient), as torch.optim does;
- diagnostics() computed from the state on demand, so the step pays nothing for them.

A subclass supplies: _check_group (argument checks), _buffers (state names), _hyper (the scalars
of one step: floats, or the group's tensors when differentiable, and bools), _update (its rule
from rules.py) and _inspect (what to watch).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch

from trainlab.errors import UserError
from trainlab.optim import checks, compiled, paths, plain
from trainlab.optim.diagnostics import Watch
from trainlab.optim.rules import direction


def scalars(group: dict[str, Any]) -> Callable[[Any], Any]:
    """How _hyper reads a group's numbers: as floats, or as given (tensors stay tensors, so the
    update is differentiable with respect to them) when the group is differentiable."""
    return _as_given if group.get("differentiable") else float


def _as_given(x: Any) -> Any:
    return x


#: devices torch.optim's fused kernels run on (fused=True elsewhere raises, as in torch)
FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu", "hpu", torch._C._get_privateuse1_backend_name())


def scalar_dtype() -> torch.dtype:
    """torch.optim's dtype for `step`: float32, or float64 when that is the default dtype."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _real(t: torch.Tensor) -> torch.Tensor:
    """Complex tensors are updated as pairs of reals, as torch.optim does."""
    return torch.view_as_real(t) if t.is_complex() else t


class TrainlabOptimizer(plain.Optimizer):
    """Shared machinery of SGD, Adagrad, RMSprop, Adam and AdamW (see the module docstring)."""

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        """Arguments are checked before `params`, as torch.optim does (same exception types)."""
        if defaults.get("fused") and defaults.get("differentiable"):
            raise RuntimeError("`fused` does not support `differentiable`")
        if defaults.get("fused") and defaults.get("foreach"):
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        if defaults.get("capturable"):
            raise UserError(
                "capturable: CUDA-graph capture is not supported by trainlab.optim; "
                "leave capturable=False"
            )
        self._check(defaults, str)
        super().__init__(params, defaults)
        self._runtime()

    def _runtime(self) -> None:
        """Bookkeeping that is not part of the state_dict (and survives a pickle round trip)."""
        d = self.__dict__
        # the run's last step when its caller knows it (the trainer sets it): a run that ends
        # before a group's switch step never compiles ahead (a core busy, its end waiting for a
        # compile it would not use); numbers do not depend on it (the switch step is fixed)
        d.setdefault("last_step", None)
        d.setdefault("_memo", {})  # per group: its compiled update
        d.setdefault("_last", {})  # per group: its hyperparameters at the last step
        d.setdefault("_plans", {})  # per group: its _Plan
        #: the path the last step took: "for-loop", "foreach" or "compiled" (for benchmarks, tests)
        d.setdefault("execution_path", None)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Also the end of load_state_dict: new state tensors, so every cached plan goes; a
        `step` saved as a plain number (older checkpoints) becomes torch's 0-d tensor."""
        super().__setstate__(state)
        self._runtime()
        self._plans.clear()
        self._memo.clear()
        for s in self.state.values():
            if "step" in s and not isinstance(s["step"], torch.Tensor):
                s["step"] = torch.tensor(float(s["step"]), dtype=scalar_dtype())

    # ---- param groups --------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        explicit = set(param_group) - {"params"} if isinstance(param_group, dict) else set()
        index = len(self.param_groups)
        super().add_param_group(param_group)
        if "_plans" in self.__dict__:
            self._plans.pop(index, None)
            self._memo.pop(index, None)

        def field(key: str) -> str:
            return f"param_groups[{index}].{key}" if key in explicit else key

        self._check(self.param_groups[-1], field)

    def _check(self, group: dict[str, Any], field: Callable[[str], str]) -> None:
        """Check a group's arguments (`field` names them in messages)."""
        checks.nonnegative(group["lr"], field("lr"))
        checks.flag(group["maximize"], field("maximize"))
        for key in ("foreach", "fused", "differentiable"):
            if group.get(key) is not None:
                checks.flag(group[key], field(key))
        self._check_group(group, field)

    def _check_group(self, group: dict[str, Any], field: Callable[[str], str]) -> None:
        raise NotImplementedError

    # ---- what a subclass describes -------------------------------------------------------------
    def _buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        """Names of the per-parameter state tensors this group's update reads and writes."""
        raise NotImplementedError

    def _keeps_state(self, group: dict[str, Any]) -> bool:
        """False where torch keeps no state at all (SGD without momentum)."""
        return True

    def _init_state(self, group: dict[str, Any], param: torch.Tensor, state: dict) -> None:
        """Create a parameter's state on its first step: `step` and zero buffers, as torch does."""
        state["step"] = torch.tensor(0.0, dtype=scalar_dtype())
        for name in self._buffers(group):
            state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _prepare(
        self, group: dict[str, Any], params: list[torch.Tensor], states: list[dict]
    ) -> list[Hashable]:
        """Create state on a parameter's first step and advance its step count; return each
        parameter's phase: what the scalars of its update depend on (here the step number)."""
        for p, state in zip(params, states):
            if not state:
                self._init_state(group, p, state)
            else:  # e.g. amsgrad switched on after a checkpoint: new buffers start at zero
                for name in self._buffers(group):
                    if name not in state:
                        state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1.0)
        return [s.item() for s in steps]

    def _advance(self, group: dict[str, Any], plan: paths.StepPlan, states: list[dict]) -> Hashable:
        """The next step's phase on the cached plan, advancing the state's `step` tensors as
        _prepare would (one add_ on the plan's counter)."""
        if plan.counter is not None:
            plan.counter.add_(1.0)
        else:
            torch._foreach_add_([s["step"] for s in states], 1.0)
        return plan.phase + 1.0  # type: ignore[operator]

    def _diag_phase(self, state: dict) -> Hashable:
        """The phase a parameter's last step ran in (for diagnostics)."""
        return state["step"].item()

    def _hyper(self, group: dict[str, Any], phase: Hashable) -> dict[str, Any]:
        """The scalars of one step for parameters in `phase`: floats (become 0-d tensors when
        compiled, so changing them does not recompile) and bools (fixed in the compiled graph)."""
        raise NotImplementedError

    #: the update rule: a pure function of (param, grad, state, h) from rules.py
    _update: Callable[..., None]

    def _inspect(
        self,
        param: torch.Tensor,
        dx: torch.Tensor | None,
        s: dict[str, torch.Tensor],
        h: dict[str, Any],
    ) -> tuple[torch.Tensor | None, dict, dict]:
        """(the last update applied to param or None if unknown, tensors to report the norm of,
        tensors to report the mean of), recomputed from the state after the step."""
        raise NotImplementedError

    def _compilable(self, h: dict[str, Any]) -> bool:
        return True

    @staticmethod
    def _common(group: dict[str, Any]) -> dict[str, Any]:
        """Scalars every update uses: lr, maximize and the L2 weight decay."""
        num = scalars(group)
        wd = num(group["weight_decay"])
        return {
            "lr": num(group["lr"]),
            "maximize": bool(group["maximize"]),
            "weight_decay": wd,
            "l2": bool(wd != 0),
        }

    def _count(self, group: dict[str, Any], phase: Hashable) -> int:
        """The group's step number (what the switch to the compiled path depends on)."""
        return int(phase)  # type: ignore[call-overload]

    def _sparse(self, group: dict[str, Any]) -> None:
        """Sparse gradients: refused as torch.optim refuses them (SGD and Adagrad take them)."""
        raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")

    # ---- the step ------------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step (the closure, if given, re-evaluates the loss first).
        The update runs without autograd unless differentiable=True (grad mode switched
        directly: the torch.no_grad() decorator costs a context-manager object per call)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grad_was = torch.is_grad_enabled()
        torch._C._set_grad_enabled(bool(self.defaults.get("differentiable")))
        try:
            for index, group in enumerate(self.param_groups):
                self._step_group(index, group)
        finally:
            torch._C._set_grad_enabled(grad_was)
        return loss

    def _step_group(self, index: int, group: dict[str, Any]) -> None:
        plan = self._plans.get(index)
        if plan is not None:
            params = plan.params
            grads = [p.grad for p in params]
            if (
                not any(g is None for g in grads)
                and tuple(map(id, group["params"])) == plan.ids
                and (not plan.idle or all(p.grad is None for p in plan.idle))
                and self._buffers(group) == plan.names
            ):
                state = self.state
                states = [state[p] for p in params] if plan.names else []
                try:
                    buffers = {n: [s[n] for s in states] for n in plan.names}
                except KeyError:  # state cleared or replaced: the full step rebuilds it
                    pass
                else:
                    phase = plan.phase = self._advance(group, plan, states)
                    self._last[index] = dict(group)
                    self._run(
                        index,
                        group,
                        params,
                        grads,
                        buffers,
                        self._hyper(group, phase),
                        plan.start,
                        self._count(group, phase),
                    )
                    return
            del self._plans[index]
        self._full_step(index, group)

    def _full_step(self, index: int, group: dict[str, Any]) -> None:
        """A step that checks everything: gradients present, sparse or complex, state created,
        parameters grouped by phase; it leaves a plan for the next steps when it can."""
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        if group.get("fused"):
            for p in params:
                if p.device.type not in FUSED_DEVICES or not torch.is_floating_point(p):
                    raise RuntimeError(
                        "`fused=True` requires all the params to be floating point Tensors "
                        f"of supported devices: {list(FUSED_DEVICES)} but {p.dtype} and "
                        f"{p.device.type}"
                    )
        cached = not group.get("differentiable")
        if any(g.is_sparse for g in grads):
            self._sparse(group)  # raises where not supported
            grads = [g.to_dense() if g.is_sparse else g for g in grads]
            cached = False
        states = (
            [self.state[p] for p in params] if self._keeps_state(group) else [{} for _ in params]
        )
        phases = self._prepare(group, params, states)
        names = self._buffers(group)
        self._last[index] = dict(group)
        if any(p.is_complex() for p in params):
            cached = False
            params, grads = [_real(p) for p in params], [_real(g) for g in grads]
            states = [{n: _real(s[n]) for n in names} for s in states]
        first = phases[0]
        if all(ph == first for ph in phases):
            parts = [(first, range(len(params)))]
        else:  # parameters that skipped steps: group them by step
            by_phase: dict[Hashable, list[int]] = {}
            for i, ph in enumerate(phases):
                by_phase.setdefault(ph, []).append(i)
            parts = list(by_phase.items())
            cached = False
        if cached:
            self._plans[index] = plan = paths.StepPlan(group, params, names, first)
            start = plan.start
            if names:
                plan.share_steps(states)
        else:
            start = paths.compile_start(params)
        for phase, idx in parts:
            self._run(
                index,
                group,
                [params[i] for i in idx],
                [grads[i] for i in idx],
                {n: [states[i][n] for i in idx] for n in names},
                self._hyper(group, phase),
                start if len(parts) == 1 else 0,
                self._count(group, phase),
            )

    def _run(
        self,
        index: int,
        group: dict[str, Any],
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        buffers: dict[str, list[torch.Tensor]],
        h: dict[str, Any],
        start: int | None,
        step: int,
    ) -> None:
        """Run the update on the path paths.choose picks (see paths.py)."""
        compilable = self._compilable(h)
        path = paths.choose(group, compilable, start, step)
        memo = self._memo.setdefault(index, {})
        differentiable = bool(group.get("differentiable"))
        self.execution_path = paths.run(
            self._update, path, params, grads, buffers, h, memo, differentiable, compilable
        )
        ends_before = self.last_step is not None and start is not None and self.last_step < start
        if compilable and not ends_before and paths.compiles_later(group, path, start, step):
            compiled.ahead(self._update, params, grads, buffers, h, memo)

    # ---- diagnostics ---------------------------------------------------------------------------
    @torch.no_grad()
    def diagnostics(self) -> dict[str, Any]:
        """What the lecture says to watch, recomputed from the state of the last step:
        {"params": {name: {...}}, "groups": [{...}, ...]} with update_ratio (|update| / |param|;
        about 1e-3 is healthy), update_norm, param_norm, the velocity / first-moment norm and, for
        the adaptive methods, effective_lr (the mean per-parameter step size). Parameters are keyed
        by name when the optimizer was given named parameters, else "group.index". Call it after
        step() and before zero_grad(): updates that need the last gradient (plain SGD, Nesterov,
        Adagrad, RMSprop without momentum) report update_ratio None once the gradient is gone."""
        out_params: dict[str, dict[str, float | None]] = {}
        out_groups: list[dict[str, Any]] = []
        for gi, group in enumerate(self.param_groups):
            last = self._last.get(gi)
            names = group.get("param_names")
            watch = Watch()
            if last is not None and any(isinstance(v, torch.Tensor) for v in last.values()):
                last = {
                    k: float(v) if isinstance(v, torch.Tensor) else v
                    for k, v in last.items()
                    if k not in ("params", "param_names")
                }
            for pi, p in enumerate(group["params"]):
                s = self.state.get(p, {})
                if last is None or (not s and self._keeps_state(last)):
                    continue
                h = self._hyper(last, self._diag_phase(s))
                param, grad = _real(p), p.grad
                dx = direction(param, _real(grad), h) if grad is not None else None
                bufs = {
                    n: _real(t)
                    for n, t in s.items()
                    if isinstance(t, torch.Tensor) and t.shape == p.shape
                }
                update, norms, means = self._inspect(param, dx, bufs, h)
                key = names[pi] if names else f"{gi}.{pi}"
                out_params[key] = watch.add(param, update, norms, means)
            figures = watch.result() if watch.count else {"update_ratio": None}
            figures["lr"] = float(group["lr"])
            out_groups.append(figures)
        return {"params": out_params, "groups": out_groups}
