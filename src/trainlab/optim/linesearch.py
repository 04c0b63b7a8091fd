"""Line searches along a direction d from x: given phi(t) = f(x + t d), pick a step t.

strong_wolfe: the step satisfies the strong Wolfe conditions (sufficient decrease, and a slope
  reduced in magnitude), as quasi-Newton methods need to keep their curvature pairs positive
  (Nocedal & Wright, Numerical Optimization, algorithms 3.5 and 3.6, cubic interpolation).
backtracking: halve t until sufficient decrease (Armijo), enough for Newton's well-scaled steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

# evaluate(t) moves the parameters to x + t d and returns (loss, flat gradient) there
Evaluate = Callable[[float], tuple[float, torch.Tensor]]


def cubic_minimizer(
    t1: float, f1: float, g1: float, t2: float, f2: float, g2: float, low: float, high: float
) -> float:
    """The minimizer of the cubic through (t1, f1, slope g1) and (t2, f2, slope g2), clamped to
    [low, high]; the middle of that interval when the cubic has no minimum."""
    if t1 == t2:
        return (low + high) / 2
    d1 = g1 + g2 - 3 * (f1 - f2) / (t1 - t2)
    disc = d1 * d1 - g1 * g2
    if disc < 0 or not math.isfinite(disc):
        return (low + high) / 2
    d2 = math.copysign(math.sqrt(disc), t2 - t1)
    denom = g2 - g1 + 2 * d2
    if denom == 0:
        return (low + high) / 2
    t = t2 - (t2 - t1) * (g2 + d2 - d1) / denom
    return min(max(t, low), high) if math.isfinite(t) else (low + high) / 2


def strong_wolfe(
    evaluate: Evaluate,
    d: torch.Tensor,
    f0: float,
    g0: torch.Tensor,
    t: float,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_evals: int = 25,
) -> tuple[float, torch.Tensor, float, int]:
    """A step t with f(x + t d) <= f0 + c1 t g0.d and |g(x + t d).d| <= c2 |g0.d|.
    Returns (loss, gradient, t, evaluations); the parameters are left at x + t d."""
    slope0 = float(g0.dot(d))
    d_max = float(d.abs().max())
    prev = (0.0, f0, g0, slope0)
    evals = 0
    bracket = None
    while evals < max_evals:  # 1) grow t until the minimum is bracketed
        f, g = evaluate(t)
        evals += 1
        slope = float(g.dot(d))
        if f > f0 + c1 * t * slope0 or (evals > 1 and f >= prev[1]):
            bracket = [prev, (t, f, g, slope)]
            break
        if abs(slope) <= -c2 * slope0:
            return f, g, t, evals
        if slope >= 0:
            bracket = [(t, f, g, slope), prev]
            break
        t_next = cubic_minimizer(
            prev[0], prev[1], prev[3], t, f, slope, t + 0.01 * (t - prev[0]), 10 * t
        )
        prev, t = (t, f, g, slope), t_next
    if bracket is None:
        return f, g, t, evals
    lo, hi = bracket  # 2) zoom: lo satisfies sufficient decrease and has the lower loss
    while evals < max_evals and abs(hi[0] - lo[0]) * d_max >= tolerance_change:
        a, b = sorted((lo[0], hi[0]))
        width = b - a
        t = cubic_minimizer(
            lo[0], lo[1], lo[3], hi[0], hi[1], hi[3], a + 0.1 * width, b - 0.1 * width
        )
        f, g = evaluate(t)
        evals += 1
        slope = float(g.dot(d))
        point = (t, f, g, slope)
        if f > f0 + c1 * t * slope0 or f >= lo[1]:
            hi = point
        else:
            if abs(slope) <= -c2 * slope0:
                return f, g, t, evals
            if slope * (hi[0] - lo[0]) >= 0:
                hi = lo
            lo = point
    if t != lo[0]:
        evaluate(lo[0])  # leave the parameters at the best point found
        evals += 1
    return lo[1], lo[2], lo[0], evals


def backtracking(
    loss_at: Callable[[float], float],
    f0: float,
    slope0: float,
    t: float,
    c1: float = 1e-4,
    shrink: float = 0.5,
    max_evals: int = 40,
) -> tuple[float, float, int]:
    """Shrink t until f(x + t d) <= f0 + c1 t g0.d (Armijo). Returns (loss, t, evaluations); the
    parameters are left at x + t d (t = 0 when no step decreases the loss)."""
    for evals in range(1, max_evals + 1):
        f = loss_at(t)
        if math.isfinite(f) and f <= f0 + c1 * t * slope0:
            return f, t, evals
        t *= shrink
    return loss_at(0.0), 0.0, max_evals + 1
