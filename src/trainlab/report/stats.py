"""Paired comparisons of seeds: mean and spread, the t confidence interval of the mean paired
difference, the paired t-test, Holm's correction for many pairs, the seeds a difference needs,
and the verdict in words (`compare_pairs`, shared by `trainlab compare` and `search --retest`).

The Student t distribution is scipy.stats' (scipy comes with scikit-learn); what is ours is the
paired comparison around it, which tests/test_stats.py checks against scipy.stats.ttest_rel and
its noncentral t.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1; None for a single value)."""
    if not values:
        raise ValueError("mean_std: no values")
    sd = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), sd


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom."""
    return float(_t().sf(t, df))


def t_ppf(q: float, df: float) -> float:
    """The q-quantile of Student's t."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"t_ppf: q must be in (0, 1), got {q}")
    return float(_t().ppf(q, df))


def _t():  # noqa: ANN202
    """scipy's Student t (scipy.stats takes a second to import: only when a test is run)."""
    from scipy.stats import t

    return t


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

    def enough(n: int) -> bool:
        need = ((t_ppf(1 - alpha / 2, n - 1) + t_ppf(power, n - 1)) * sd / abs(delta)) ** 2
        return n >= need

    # the quantiles shrink as n grows, so `enough` turns true once and stays true: bisect
    # (a scan to the cap took seconds for a difference far smaller than its spread)
    if not enough(cap):
        return None
    lo, hi = 1, cap  # enough(hi) holds; enough(lo) is taken as false
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if enough(mid):
            hi = mid
        else:
            lo = mid
    return hi


def higher_is_better(metric: str) -> bool:
    """Accuracies grow with quality, losses shrink."""
    return metric.endswith("_accuracy")


def _scale(metric: str) -> tuple[float, str]:
    """Accuracies are reported in points (x100), losses as they are."""
    return (100.0, " points") if higher_is_better(metric) else (1.0, "")


def fmt(x: float, metric: str) -> str:
    """A value or difference of `metric` as the verdicts print it (accuracies in points)."""
    scale, _ = _scale(metric)
    return f"{x * scale:.2f}" if scale != 1.0 else f"{x:.4g}"


def verdict(
    a: str, b: str, metric: str, p: dict[str, Any], level: float, margin: float, m: int, seeds: int
) -> str:
    """The comparison of `b` against `a` in words, from a pair of `compare_pairs`: who is better
    and by how much with its interval, equivalence within `margin`, or the seeds a verdict needs."""
    _, unit = _scale(metric)
    if p["sd"] is None:
        return (
            f"{b} - {a} = {fmt(p['diff'], metric)}{unit} on {p['n']} paired seed(s): "
            "a test needs at least 2"
        )
    conf = f"{100 * level:.4g}% CI"
    adj = f", Holm-adjusted over {m} pairs" if m > 1 else ""
    if p["better"] is not None:
        win, lose = (b, a) if p["better"] == "b" else (a, b)
        sign = 1.0 if p["better"] == "b" else -1.0
        lo, hi = sorted((sign * p["ci_low"], sign * p["ci_high"]))
        gap = abs(p["diff"])
        word = "higher" if higher_is_better(metric) else "lower"
        return (
            f"{win} is better than {lose} by {fmt(gap, metric)}{unit} ({word} "
            f"{metric}), {conf} [{fmt(lo, metric)}, {fmt(hi, metric)}], {seeds} paired seeds "
            f"(p = {p['p_value']:.2g}{adj})"
        )
    if p["sd"] == 0.0 and p["diff"] == 0.0:
        return f"no difference: {a} and {b} gave the same {metric} on all {seeds} seeds"
    ci = f"{conf} [{fmt(p['ci_low'], metric)}, {fmt(p['ci_high'], metric)}]"
    if p["equivalent"]:
        return (
            f"no difference between {a} and {b} larger than {fmt(margin, metric)}"
            f"{unit}: {b} - {a} = {fmt(p['diff'], metric)}{unit}, {ci}, "
            f"{seeds} paired seeds"
        )
    need = p["seeds_needed"]
    more = (
        f"about {need} would be needed to see {fmt(abs(p['diff']), metric)}{unit}"
        if need is not None
        else f"a difference of {fmt(abs(p['diff']), metric)}{unit} is too small to "
        "detect with any practical number"
    )
    return (
        f"no difference between {a} and {b} detectable with {seeds} seeds "
        f"({b} - {a} = {fmt(p['diff'], metric)}{unit}, {ci}); {more}"
    )


def compare_pairs(
    pairs: Sequence[tuple[str, str, Sequence[float], Sequence[float]]],
    metric: str | Sequence[str],
    *,
    confidence: float = 0.95,
    margin: float = 0.0,
) -> list[dict[str, Any]]:
    """Each pair (name a, name b, a's values, b's values on the same seeds in the same order):
    the paired difference b - a with its t interval, the Holm-adjusted p-value over all the
    pairs, which is better (None when not significant at `confidence`), whether the interval
    lies inside +/- `margin` (equivalent), the seeds a verdict would need, and the verdict in
    words (`metric`: one for all pairs, or each pair's a's). `trainlab compare` and the search's
    `--retest` report with it."""
    metrics = [metric] * len(pairs) if isinstance(metric, str) else list(metric)
    alpha = 1.0 - confidence
    stats = [paired(x, y, confidence) for _, _, x, y in pairs]
    adjusted = holm([st.p_value for st in stats])
    m = len(pairs)
    out = []
    for (a, b, _, _), metric_, st, p_adj in zip(pairs, metrics, stats, adjusted, strict=True):
        better = None
        if p_adj is not None and p_adj < alpha and st.diff != 0.0:
            better = "b" if (st.diff > 0) == higher_is_better(metric_) else "a"
        equivalent = (
            better is None
            and st.ci_low is not None
            and st.ci_high is not None
            and -margin <= st.ci_low
            and st.ci_high <= margin
        )
        need = seeds_needed(st.sd, st.diff, 1.0 - alpha / m) if st.sd is not None else None
        pair = {
            "a": a,
            "b": b,
            "diff": st.diff,
            "ci_low": st.ci_low,
            "ci_high": st.ci_high,
            "p_value": p_adj,
            "better": better,
            "p_unadjusted": st.p_value,
            "n": st.n,
            "sd": st.sd,
            "equivalent": equivalent,
            "seeds_needed": need,
        }
        pair["verdict"] = verdict(a, b, metric_, pair, confidence, margin, m, st.n)
        out.append(pair)
    return out
