"""Newton's method with the exact Hessian, for small full-batch problems:

    x_new = x - lr * (H + damping * I)^-1 g

It converges in a handful of iterations near a minimum, but H has n^2 entries and costs n
backward passes, so it refuses models above `max_params` parameters (use LBFGS there).

Closure API: the same closure as torch.optim.LBFGS (zero the gradients, compute the loss, call
backward, return the loss). To get second derivatives, Newton runs that closure once per iteration
under a TorchFunctionMode that turns its `loss.backward()` into
`torch.autograd.grad(loss, params, create_graph=True)` (the parameters' .grad still receive the
gradient); a closure that returns the loss without calling backward works too. The Hessian is
then the Jacobian of that differentiable gradient, all rows at once by torch.autograd.grad with
is_grads_batched=True (vmap over the identity's rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from trainlab.errors import UserError
from trainlab.optim import checks, plain
from trainlab.optim.flat import FlatParams, as_float
from trainlab.optim.lbfgs import positive_int, tolerance
from trainlab.optim.linesearch import backtracking

_ROWS = 256  # Hessian rows computed per batched backward pass


class _DifferentiableBackward(TorchFunctionMode):
    """Inside a closure: `loss.backward()` keeps the gradient's graph for a second derivative."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        super().__init__()
        self.params = params
        self.grads: list[torch.Tensor | None] | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if func is not torch.Tensor.backward:
            return func(*args, **kwargs)
        loss = args[0]
        grads = torch.autograd.grad(
            loss,
            self.params,
            grad_outputs=kwargs.get("gradient"),
            create_graph=True,
            allow_unused=True,
        )
        if self.grads is None:
            self.grads = list(grads)
        else:
            self.grads = [
                a if b is None else (b if a is None else a + b) for a, b in zip(self.grads, grads)
            ]
        with torch.no_grad():
            for p, g in zip(self.params, grads):
                if g is not None:
                    p.grad = g.detach().clone() if p.grad is None else p.grad + g.detach()
        return None


class Newton(plain.Optimizer):
    """Newton's method, exact Hessian, damped, with a backtracking line search (see module doc).

    lr: step length tried first (1 is the pure Newton step); damping: added to the Hessian's
    diagonal (raised automatically, x10 at a time, where H + damping * I is not positive definite,
    e.g. at a saddle or along a flat direction); max_iter: Newton iterations per step();
    tolerance_grad / tolerance_change: stop when max|g| or the change of x or of the loss falls
    below them; line_search_fn: "backtracking" (Armijo) or None (fixed step lr); max_params: the
    largest parameter count accepted (the Hessian takes max_params^2 numbers).
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        damping: float = 0.0,
        max_iter: int = 1,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        line_search_fn: str | None = "backtracking",
        max_params: int = 4096,
    ) -> None:
        checks.positive(lr, "lr")
        checks.nonnegative(damping, "damping")
        for name, value in (
            ("tolerance_grad", tolerance_grad),
            ("tolerance_change", tolerance_change),
        ):
            tolerance(value, name)
        for name, value in (("max_iter", max_iter), ("max_params", max_params)):
            positive_int(value, name)
        if line_search_fn not in (None, "backtracking"):
            raise UserError(
                f"line_search_fn: must be None or 'backtracking', got {line_search_fn!r}"
            )
        defaults = {
            "lr": lr,
            "damping": damping,
            "max_iter": max_iter,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "line_search_fn": line_search_fn,
            "max_params": max_params,
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise UserError(
                "param_groups: Newton doesn't support per-parameter options (parameter groups)"
            )
        self._flat = FlatParams(self.param_groups[0]["params"])
        if any(p.is_complex() for p in self._flat.params):
            raise UserError("params: Newton works on real parameters only (use LBFGS)")
        n = self._flat.numel
        if n > max_params:
            raise UserError(
                f"max_params: Newton forms the exact {n} x {n} Hessian; this model has {n} "
                f"parameters, above max_params={max_params} (use LBFGS, or raise "
                f"max_params if {n * n * 8 / 1e9:.2g} GB and {n} backward passes per step "
                "are fine)"
            )

    def _derivatives(self, closure: Callable[[], Any]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """(the closure's loss, the flat gradient g, the Hessian H) at the current parameters."""
        params = self._flat.params
        mode = _DifferentiableBackward(params)
        with torch.enable_grad():
            with mode:
                loss = closure()
            grads = mode.grads
            if grads is None:  # the closure did not call backward: differentiate its loss here
                grads = list(
                    torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
                )
            parts = [
                (g if g is not None else torch.zeros_like(p)).reshape(-1)
                for g, p in zip(grads, params)
            ]
            g = torch.cat(parts)
            n = g.numel()
            if not g.requires_grad:  # the loss is linear in the parameters
                return loss, g.detach(), torch.zeros(n, n, dtype=g.dtype, device=g.device)
            hessian = torch.empty(n, n, dtype=g.dtype, device=g.device)
            eye = torch.eye(n, dtype=g.dtype, device=g.device)
            for lo in range(0, n, _ROWS):  # rows in chunks: memory stays _ROWS x the graph
                hi = min(lo + _ROWS, n)
                rows = torch.autograd.grad(
                    g,
                    params,
                    grad_outputs=eye[lo:hi],
                    is_grads_batched=True,
                    allow_unused=True,
                    retain_graph=hi < n,
                )
                hessian[lo:hi] = torch.cat(
                    [
                        (
                            r
                            if r is not None
                            else torch.zeros(hi - lo, p.numel(), dtype=g.dtype, device=g.device)
                        ).reshape(hi - lo, -1)
                        for r, p in zip(rows, params)
                    ],
                    dim=1,
                )
        return loss, g.detach(), hessian

    @staticmethod
    def _direction(
        hessian: torch.Tensor, g: torch.Tensor, damping: float
    ) -> tuple[torch.Tensor, float]:
        """d solving (H + damping * I) d = -g by Cholesky, in float64; damping grows x10 (from a
        tiny multiple of H's scale) until H + damping * I is positive definite."""
        h = hessian.double()
        h = (h + h.T) / 2
        eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
        scale = max(float(h.diagonal().abs().max()) if h.numel() else 0.0, 1e-12)
        for _ in range(30):
            chol, info = torch.linalg.cholesky_ex(h + damping * eye)
            if int(info) == 0:
                d = torch.cholesky_solve(-g.double().unsqueeze(1), chol).squeeze(1)
                return d.to(g.dtype), damping
            damping = max(damping * 10, scale * 1e-10)
        return g.neg(), damping  # nothing positive definite: fall back to steepest descent

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Up to max_iter Newton iterations; returns the loss the closure gave at the start."""
        if closure is None:
            raise TypeError("Newton.step needs a closure that re-evaluates the loss")
        group = self.param_groups[0]
        flat = self._flat
        state = self.state[flat.params[0]]
        state.setdefault("n_iter", 0)
        state.setdefault("func_evals", 0)
        orig_loss = None
        for _ in range(group["max_iter"]):
            loss_t, g, hessian = self._derivatives(closure)
            state["func_evals"] += 1
            loss = as_float(loss_t)
            if orig_loss is None:
                orig_loss = loss_t
            if float(g.abs().max()) <= group["tolerance_grad"]:
                break
            d, damping = self._direction(hessian, g, float(group["damping"]))
            slope = float(g.dot(d))
            if slope >= 0:  # not a descent direction (numerically): go downhill instead
                d, slope = g.neg(), -float(g.dot(g))
            state["n_iter"] += 1
            state["damping"] = damping
            state["newton_decrement"] = max(-slope, 0.0) ** 0.5  # sqrt(g^T H^-1 g)
            t = float(group["lr"])
            if group["line_search_fn"] == "backtracking":
                x0 = flat.get()

                def loss_at(step: float, x0: torch.Tensor = x0, d: torch.Tensor = d) -> float:
                    flat.set_(x0.add(d, alpha=step))
                    with torch.enable_grad():
                        return as_float(closure())

                new_loss, t, evals = backtracking(loss_at, loss, slope, t)
                state["func_evals"] += evals
            else:
                flat.add_(t, d)
                new_loss = -float("inf")  # unknown until the next evaluation: do not stop on it
            moved = float(d.abs().max()) * abs(t)
            tol = group["tolerance_change"]
            if moved <= tol or abs(new_loss - loss) < tol:
                break
        return orig_loss
