"""L-BFGS: a quasi-Newton method for full-batch, deterministic problems. It never forms the
Hessian: the last `history_size` steps and gradient changes

    s_k = x_{k+1} - x_k        y_k = g_{k+1} - g_k        rho_k = 1 / (y_k . s_k)

describe its curvature, and the two-loop recursion (two_loop below) turns them into the direction
d = -H g, H the inverse-Hessian estimate, starting from H_0 = gamma I, gamma = s.y / y.y of the
latest pair. A pair is kept only when y.s > 1e-10 (positive curvature keeps H positive definite).

The state is torch.optim.LBFGS's, key for key and type for type, so a state_dict moves between the
two classes and the next step is the same with either (torch's names: `old_dirs` holds the y_k,
`old_stps` the s_k, `ro` the rho_k, `H_diag` gamma, `al` the first loop's alphas, `d` and `t` the
last direction and step length, `prev_flat_grad`/`prev_loss` the gradient and loss before it,
`n_iter`/`func_evals` the iterations and closure calls so far).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch

from trainlab.errors import UserError
from trainlab.optim import checks, plain
from trainlab.optim.flat import FlatParams
from trainlab.optim.linesearch import Point, strong_wolfe


def two_loop(
    g: torch.Tensor,
    old_dirs: list[torch.Tensor],
    old_stps: list[torch.Tensor],
    ro: list[torch.Tensor],
    H_diag: Any,  # noqa: N803 (torch's state key)
    al: list[Any],
) -> torch.Tensor:
    """The L-BFGS direction d = -H g from the pairs (s_i = old_stps[i], y_i = old_dirs[i]):

        q = -g;   for i = k-1 ... k-m:  alpha_i = rho_i s_i.q,   q = q - alpha_i y_i
        r = gamma q;  for i = k-m ... k-1:  beta_i = rho_i y_i.r,  r = r + (alpha_i - beta_i) s_i

    The alphas go into `al` (torch keeps that buffer in the state)."""
    q = g.neg()
    for i in reversed(range(len(old_dirs))):
        al[i] = old_stps[i].dot(q) * ro[i]
        q.add_(old_dirs[i], alpha=-al[i])
    r = torch.mul(q, H_diag)
    for i in range(len(old_dirs)):
        beta = old_dirs[i].dot(r) * ro[i]
        r.add_(old_stps[i], alpha=al[i] - beta)
    return r


def positive_int(value: Any, name: str) -> int:
    """An argument that counts something (iterations, evaluations, pairs): an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{name}: must be an integer >= 1, got {value!r}")
    return value


def tolerance(value: Any, name: str) -> float:
    """A stopping tolerance: any number but NaN (inf stops at once, -inf never), as torch's."""
    x = checks.as_float(value, name)
    if math.isnan(x):
        raise UserError(f"{name}: must be a number, got nan")
    return x


def _upgrade(state: dict[str, Any]) -> None:
    """An L-BFGS state of trainlab's earlier layout, in torch's (in place)."""
    old_stps, old_dirs = state.pop("s_history"), state.pop("y_history")
    like = old_dirs[0] if old_dirs else state.get("d")
    as_tensor = functools.partial(torch.as_tensor, dtype=like.dtype, device=like.device)
    state["old_stps"], state["old_dirs"] = list(old_stps), list(old_dirs)
    state["ro"] = [as_tensor(rho) for rho in state.pop("rho_history")]
    gamma = state.pop("gamma")
    state["H_diag"] = as_tensor(gamma) if old_dirs else 1


def _scalar(x: Any) -> Any:
    """A 1-element tensor hyperparameter as a 0-d tensor (as torch.optim does), else as is."""
    return x.squeeze() if isinstance(x, torch.Tensor) and x.dim() != 0 else x


class LBFGS(plain.Optimizer):
    """L-BFGS with torch.optim.LBFGS's arguments, defaults, closure API and state: `opt.step(
    closure)`, the closure zeroes the gradients, computes the loss, calls backward and returns the
    loss; one step runs up to max_iter iterations and returns the loss at its start.
    line_search_fn None takes fixed steps of lr; "strong_wolfe" searches each step. One param
    group; complex parameters count as their real and imaginary parts."""

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        checks.nonnegative(lr, "lr")
        positive_int(max_iter, "max_iter")
        positive_int(history_size, "history_size")
        max_eval = positive_int(max_iter * 5 // 4 if max_eval is None else max_eval, "max_eval")
        tolerance(tolerance_grad, "tolerance_grad")
        tolerance(tolerance_change, "tolerance_change")
        if line_search_fn not in (None, "strong_wolfe"):
            raise UserError(
                f"line_search_fn: must be None or 'strong_wolfe', got {line_search_fn!r}"
            )
        defaults = {
            "lr": lr,
            "max_iter": max_iter,
            "max_eval": max_eval,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "history_size": history_size,
            "line_search_fn": line_search_fn,
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise UserError(
                "param_groups: LBFGS doesn't support per-parameter options (parameter groups)"
            )

    def __setstate__(self, state: dict[str, Any]) -> None:
        """load_state_dict ends here: it also takes the state of earlier trainlab checkpoints,
        whose history was s_history, y_history, rho_history (floats) and gamma (a float)."""
        super().__setstate__(state)
        for param_state in self.state.values():
            if "s_history" in param_state:
                _upgrade(param_state)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Up to max_iter L-BFGS iterations; returns the loss the closure gave at the start."""
        if closure is None:
            raise TypeError("LBFGS.step needs a closure that re-evaluates the loss")
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr, max_iter, max_eval = _scalar(group["lr"]), group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        flat = FlatParams(group["params"])
        # LBFGS's state is global; it lives under the first parameter, as in torch
        state = self.state[flat.params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        g = flat.grad()
        if g.abs().max() <= tol_grad:  # already optimal
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag = state.get("H_diag")  # noqa: N806 (torch's state key)
        prev_g, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")

        for it in range(1, max_iter + 1):
            state["n_iter"] += 1
            if state["n_iter"] == 1:  # the very first iteration: steepest descent, no history
                d, old_dirs, old_stps, ro, H_diag = g.neg(), [], [], [], 1  # noqa: N806
            else:
                y, s = g.sub(prev_g), d.mul(t)  # the last iteration's gradient change and step
                ys = y.dot(s)
                if ys > 1e-10:  # positive curvature: keep the pair (drop the oldest when full)
                    if len(old_dirs) == group["history_size"]:
                        old_dirs.pop(0), old_stps.pop(0), ro.pop(0)
                    old_dirs.append(y), old_stps.append(s), ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)  # noqa: N806 (gamma = s.y / y.y)
                al = state.setdefault("al", [None] * group["history_size"])
                d = two_loop(g, old_dirs, old_stps, ro, H_diag, al)
            if prev_g is None:
                prev_g = g.clone(memory_format=torch.contiguous_format)
            else:
                prev_g.copy_(g)
            prev_loss = loss

            # step length: lr, except on the very first iteration a step of lr in the 1-norm
            # (at most), as the gradient's scale is not known yet
            t = min(1.0, 1.0 / g.abs().sum()) * lr if state["n_iter"] == 1 else lr
            slope = g.dot(d)
            if slope > -tol_change:  # no longer a descent direction
                break

            if group["line_search_fn"] == "strong_wolfe":
                x0 = flat.save()

                def along(step: Any, x0: list[torch.Tensor] = x0, d: torch.Tensor = d) -> tuple:
                    flat.add_(step, d)
                    value = float(closure())
                    grad = flat.grad()
                    flat.restore(x0)
                    return value, grad

                found, ls_evals = strong_wolfe(
                    along, d, Point(0, loss, g, slope), t, max_evals=max_eval - evals
                )
                loss, g, t = found.f, found.g, found.t
                flat.add_(t, d)
                optimal = g.abs().max() <= tol_grad
            else:
                flat.add_(t, d)
                ls_evals, optimal = 0, False
                if it != max_iter:  # no use evaluating after the last iteration
                    loss = float(closure())
                    g = flat.grad()
                    optimal = g.abs().max() <= tol_grad
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals

            if (
                it == max_iter
                or evals >= max_eval
                or optimal
                or d.mul(t).abs().max() <= tol_change  # x barely moves
                or abs(loss - prev_loss) < tol_change  # the loss barely changes
            ):
                break

        state.update(
            d=d,
            t=t,
            old_dirs=old_dirs,
            old_stps=old_stps,
            ro=ro,
            H_diag=H_diag,
            prev_flat_grad=prev_g,
            prev_loss=prev_loss,
        )
        return orig_loss
