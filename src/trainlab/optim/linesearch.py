"""Line searches along a direction d from x: given phi(t) = f(x + t d), pick a step t.

strong_wolfe: a step with sufficient decrease and a slope reduced in magnitude,

    f(x + t d) <= f(x) + c1 t g.d        |g(x + t d).d| <= c2 |g.d|        (0 < c1 < c2 < 1)

as quasi-Newton methods need to keep their curvature pairs positive (Nocedal & Wright, Numerical
Optimization, algorithms 3.5 and 3.6 with cubic interpolation; the decisions are those of minFunc
and torch.optim.LBFGS, so that a step is the same with either class).
backtracking: halve t until sufficient decrease (Armijo), enough for Newton's well-scaled steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch


class Point(NamedTuple):
    """A trial step t, the loss f and flat gradient g there, and the slope g.d."""

    t: Any
    f: float
    g: torch.Tensor
    slope: Any


def cubic_minimizer(a: Point, b: Point, bounds: tuple[Any, Any] | None = None) -> Any:
    """The minimizer of the cubic through a and b (their losses and slopes), clamped to `bounds`
    (default: between a.t and b.t); the middle of the bounds when the cubic has no minimum:

        d1 = s_a + s_b - 3 (f_a - f_b) / (t_a - t_b),   d2 = sqrt(d1^2 - s_a s_b)
        t  = t_b - (t_b - t_a) (s_b + d2 - d1) / (s_b - s_a + 2 d2)     (t_a <= t_b)
    """
    low, high = bounds if bounds is not None else (min(a.t, b.t), max(a.t, b.t))
    if a.t == b.t:
        return (low + high) / 2.0
    d1 = a.slope + b.slope - 3 * (a.f - b.f) / (a.t - b.t)
    d2_square = d1**2 - a.slope * b.slope
    if not d2_square >= 0:
        return (low + high) / 2.0
    d2 = d2_square.sqrt() if isinstance(d2_square, torch.Tensor) else math.sqrt(d2_square)
    near, far = (a, b) if a.t <= b.t else (b, a)
    t = far.t - (far.t - near.t) * ((far.slope + d2 - d1) / (far.slope - near.slope + 2 * d2))
    return min(max(t, low), high)


def strong_wolfe(
    evaluate: Callable[[Any], tuple[float, torch.Tensor]],
    d: torch.Tensor,
    start: Point,
    t: Any,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_evals: int = 25,
) -> tuple[Point, int]:
    """A step t along d from `start` (t = 0) meeting the strong Wolfe conditions, or the best
    point found within max_evals evaluations. evaluate(t) returns (loss, flat gradient) at
    x + t d. Returns (that point, evaluations)."""
    d_norm = d.abs().max()
    start = start._replace(g=start.g.clone(memory_format=torch.contiguous_format))

    def too_high(p: Point) -> bool:  # sufficient decrease fails
        return p.f > start.f + c1 * p.t * start.slope

    def curvature(p: Point) -> bool:
        return abs(p.slope) <= -c2 * start.slope

    def at(step: Any) -> Point:
        f, g = evaluate(step)
        return Point(step, f, g, g.dot(d))

    # 1) grow t until [prev, new] brackets a point meeting the conditions (or new meets them)
    new, evals, tries = at(t), 1, 0
    prev, bracket, done = start, None, False
    while tries < max_evals:
        if too_high(new) or (tries > 1 and new.f >= prev.f):
            bracket = [prev, _keep(new)]
            break
        if curvature(new):
            bracket, done = [new], True
            break
        if new.slope >= 0:  # the slope turned: a minimum lies between prev and new
            bracket = [prev, _keep(new)]
            break
        longer = cubic_minimizer(prev, new, bounds=(new.t + 0.01 * (new.t - prev.t), new.t * 10))
        prev, new = _keep(new), at(longer)
        evals, tries = evals + 1, tries + 1
    if bracket is None:  # out of evaluations: the better of the start and the last point
        bracket = [start, new]

    # 2) zoom: shrink the bracket around the conditions; `low` is its end with the lower loss
    low, high = (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)
    stalled = False
    while not done and tries < max_evals:
        a, b = bracket
        if abs(b.t - a.t) * d_norm < tolerance_change:
            break
        t = cubic_minimizer(a, b)
        lo, hi = min(a.t, b.t), max(a.t, b.t)
        eps = 0.1 * (hi - lo)
        if min(hi - t, t - lo) < eps:  # too close to an end: move 10% inside if it happens twice
            if stalled or t >= hi or t <= lo:
                t = hi - eps if abs(t - hi) < abs(t - lo) else lo + eps
                stalled = False
            else:
                stalled = True
        else:
            stalled = False
        new = at(t)
        evals, tries = evals + 1, tries + 1
        if too_high(new) or new.f >= bracket[low].f:
            bracket[high] = _keep(new)
            low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
        else:
            if curvature(new):
                done = True
            elif new.slope * (bracket[high].t - bracket[low].t) >= 0:
                bracket[high] = bracket[low]
            bracket[low] = _keep(new)
    return bracket[low], evals


def _keep(p: Point) -> Point:
    """p with its own copy of the gradient (evaluate may reuse its buffer)."""
    return p._replace(g=p.g.clone(memory_format=torch.contiguous_format))


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
