"""L-BFGS: a quasi-Newton method for full-batch, deterministic problems. It never forms the
Hessian: the last `history_size` steps s = x_new - x and gradient changes y = g_new - g describe
its curvature, and the two-loop recursion turns them into the direction -H^-1 g."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from trainlab.errors import UserError
from trainlab.optim import checks
from trainlab.optim.flat import FlatParams
from trainlab.optim.linesearch import strong_wolfe


def two_loop(
    g: torch.Tensor,
    s_hist: list[torch.Tensor],
    y_hist: list[torch.Tensor],
    rho_hist: list[float],
    gamma: float,
) -> torch.Tensor:
    """The L-BFGS direction d = -H g, H the inverse-Hessian estimate built from the pairs (s, y)
    with rho = 1 / (y.s), starting from gamma * I, gamma = s.y / y.y of the latest pair."""
    q = g.neg()
    alphas = []
    for s, y, rho in zip(reversed(s_hist), reversed(y_hist), reversed(rho_hist)):
        alpha = rho * float(s.dot(q))
        q.add_(y, alpha=-alpha)
        alphas.append(alpha)
    r = q.mul_(gamma)
    for s, y, rho, alpha in zip(s_hist, y_hist, rho_hist, reversed(alphas)):
        beta = rho * float(y.dot(r))
        r.add_(s, alpha=alpha - beta)
    return r


def _along(
    flat: FlatParams, closure: Callable[[], Any], d: torch.Tensor
) -> Callable[[float], tuple[float, torch.Tensor]]:
    """phi(t): move the parameters to x + t d (x: where they are now), return (loss, gradient)."""
    x0 = flat.get()

    def evaluate(t: float) -> tuple[float, torch.Tensor]:
        flat.set_(x0.add(d, alpha=t))
        _, value, grad = flat.evaluate(closure)
        return value, grad

    return evaluate


class LBFGS(torch.optim.Optimizer):
    """L-BFGS with torch.optim.LBFGS's arguments, defaults and closure API: `opt.step(closure)`,
    the closure zeroes the gradients, computes the loss, calls backward and returns the loss; one
    step runs up to max_iter iterations and returns the loss at its start. line_search_fn None
    takes fixed steps of lr; "strong_wolfe" searches each step. One param group only."""

    def __init__(
        self,
        params: Any,
        lr: float = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        checks.positive(lr, "optim.lr")
        for name, value in (("max_iter", max_iter), ("history_size", history_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"optim.{name}: must be an integer >= 1, got {value!r}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        if isinstance(max_eval, bool) or not isinstance(max_eval, int) or max_eval < 1:
            raise UserError(f"optim.max_eval: must be an integer >= 1, got {max_eval!r}")
        checks.nonnegative(tolerance_grad, "optim.tolerance_grad")
        checks.nonnegative(tolerance_change, "optim.tolerance_change")
        if line_search_fn not in (None, "strong_wolfe"):
            raise UserError(
                f"optim.line_search_fn: must be null or strong_wolfe, got {line_search_fn!r}"
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
            raise UserError("optim.param_groups: LBFGS optimizes one param group only")
        self._flat = FlatParams(self.param_groups[0]["params"], "lbfgs")

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Up to max_iter L-BFGS iterations; returns the loss the closure gave at the start."""
        if closure is None:
            raise UserError("optim: LBFGS.step needs a closure that re-evaluates the loss")
        group = self.param_groups[0]
        flat = self._flat
        lr, history = float(group["lr"]), group["history_size"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        state = self.state[flat.params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss, loss, g = flat.evaluate(closure)
        evals = 1
        state["func_evals"] += 1
        if float(g.abs().max()) <= tol_grad:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        s_hist, y_hist = state.get("s_history", []), state.get("y_history", [])
        rho_hist, gamma = state.get("rho_history", []), state.get("gamma", 1.0)
        prev_g, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")

        for it in range(group["max_iter"]):
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, s_hist, y_hist, rho_hist, gamma = g.neg(), [], [], [], 1.0
            else:
                y, s = g.sub(prev_g), d.mul(t)  # gradient change and step of the last iteration
                ys = float(y.dot(s))
                if ys > 1e-10:  # keep only pairs with positive curvature
                    if len(s_hist) == history:
                        s_hist.pop(0), y_hist.pop(0), rho_hist.pop(0)
                    s_hist.append(s), y_hist.append(y), rho_hist.append(1.0 / ys)
                    gamma = ys / float(y.dot(y))
                d = two_loop(g, s_hist, y_hist, rho_hist, gamma)
            prev_g, prev_loss = g.clone(), loss
            # first iteration: a step of length lr in the 1-norm, as the gradient's scale is unknown
            t = min(1.0, 1.0 / float(g.abs().sum())) * lr if state["n_iter"] == 1 else lr
            slope = float(g.dot(d))
            if slope > -tol_change:  # not a descent direction any more
                break
            if group["line_search_fn"] == "strong_wolfe":
                loss, g, t, ls_evals = strong_wolfe(
                    _along(flat, closure, d), d, loss, g, t, tolerance_change=tol_change
                )
            else:
                flat.add_(t, d)
                ls_evals = 0
                if it + 1 != group["max_iter"]:
                    _, loss, g = flat.evaluate(closure)
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals
            if (
                evals >= group["max_eval"]
                or float(g.abs().max()) <= tol_grad
                or float(d.abs().max()) * abs(t) <= tol_change
                or abs(loss - prev_loss) < tol_change
            ):
                break

        state.update(
            d=d,
            t=t,
            s_history=s_hist,
            y_history=y_hist,
            rho_history=rho_hist,
            gamma=gamma,
            prev_flat_grad=prev_g,
            prev_loss=prev_loss,
        )
        return orig_loss
