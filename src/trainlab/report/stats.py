"""Paired comparisons of seeds: mean and spread, the t confidence interval of the mean paired
difference, the paired t-test, Holm's correction for many pairs, and the seeds a difference needs.

Pure Python (no torch, no scipy): the Student t distribution comes from the regularized
incomplete beta function. tests/test_stats.py checks every number against scipy.stats.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1; None for a single value)."""
    if not values:
        raise ValueError("mean_std: no values")
    sd = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), sd


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return tail if t >= 0 else 1.0 - tail


def t_ppf(q: float, df: float) -> float:
    """The q-quantile of Student's t (bisection on the survival function, to 1e-12)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"t_ppf: q must be in (0, 1), got {q}")
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > 1.0 - q:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_sf(mid, df) > 1.0 - q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass
class Paired:
    """The paired comparison of b against a: d_i = b_i - a_i over the n shared seeds."""

    n: int
    diff: float  # mean of d_i
    sd: float | None  # sample standard deviation of d_i
    ci_low: float | None
    ci_high: float | None
    t: float | None
    p_value: float | None  # two-sided


def paired(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Paired:
    """Paired t-test and t interval of the mean difference b - a:

    d = mean(d_i), s = sd(d_i), SE = s / sqrt(n), t = d / SE with n - 1 degrees of freedom,
    p = 2 P(T > |t|), CI = d -/+ t_{(1+confidence)/2, n-1} SE.
    With s = 0 the differences are all equal: p = 1 and CI [0, 0] when they are all 0, else
    p = 0 and CI [d, d] (scipy says nan / 0 there). With one pair only d is known.
    """
    if len(a) != len(b):
        raise ValueError(f"paired: {len(a)} values against {len(b)}")
    d = [y - x for x, y in zip(a, b, strict=True)]
    n = len(d)
    mean, sd = mean_std(d)
    if sd is None:
        return Paired(n, mean, None, None, None, None, None)
    if sd == 0.0:
        if mean == 0.0:
            return Paired(n, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
        return Paired(n, mean, 0.0, mean, mean, math.copysign(math.inf, mean), 0.0)
    se = sd / math.sqrt(n)
    t = mean / se
    p = min(1.0, 2.0 * t_sf(abs(t), n - 1))
    half = t_ppf((1.0 + confidence) / 2.0, n - 1) * se
    return Paired(n, mean, sd, mean - half, mean + half, t, p)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None): sort ascending, p_(i) * (m - i + 1),
    running maximum, capped at 1. A pair is significant at level alpha when its adjusted p < alpha.

    Holm controls the chance of any false "better" among all pairs (family-wise error), like
    Bonferroni, with more power, and needs no assumption about how the tests depend on each
    other (pairs that share a config are dependent; Sidak and Hochberg would need more).
    """
    known = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(known)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(known):
        running = max(running, min(1.0, p * (m - rank)))
        out[i] = running
    return out


def seeds_needed(
    sd: float, delta: float, confidence: float = 0.95, power: float = 0.8, cap: int = 10_000
) -> int | None:
    """Paired seeds for a two-sided paired t-test at `confidence` to detect a mean difference
    `delta` with probability `power` when the differences spread with `sd`: the smallest n with
    n >= ((t_{1-alpha/2, n-1} + t_{power, n-1}) sd / delta)^2. None if above `cap` or delta = 0.
    """
    if delta == 0.0:
        return None
    if sd == 0.0:
        return 2
    alpha = 1.0 - confidence
    for n in range(2, cap + 1):
        need = ((t_ppf(1 - alpha / 2, n - 1) + t_ppf(power, n - 1)) * sd / abs(delta)) ** 2
        if n >= need:
            return n
    return None
