"""trainlab.report.stats against scipy.stats on fixed inputs: the paired test, interval, Holm
and the seeds a difference needs (the t distribution itself is scipy's)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from trainlab.report import stats

A = [0.951, 0.962, 0.955, 0.948, 0.962, 0.957, 0.944, 0.96, 0.953, 0.949]
B = [0.958, 0.965, 0.957, 0.955, 0.97, 0.956, 0.951, 0.966, 0.955, 0.96]


@pytest.mark.parametrize(("a", "b"), [(A, B), (B, A), (A[:3], B[:3]), ([1.0, 2.0], [1.5, 3.0])])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_paired_test_and_interval_are_scipys(a, b, confidence):
    got = stats.paired(a, b, confidence)
    ref = sp.ttest_rel(b, a)
    d = np.asarray(b) - np.asarray(a)
    low, high = sp.t.interval(confidence, len(d) - 1, loc=d.mean(), scale=sp.sem(d))
    assert got.n == len(a)
    assert got.diff == pytest.approx(d.mean(), rel=1e-12)
    assert got.sd == pytest.approx(d.std(ddof=1), rel=1e-12)
    assert got.t == pytest.approx(ref.statistic, rel=1e-10)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert (got.ci_low, got.ci_high) == (
        pytest.approx(low, rel=1e-9),
        pytest.approx(high, rel=1e-9),
    )


def test_paired_degenerate_cases():
    same = stats.paired(A, A)
    assert (same.diff, same.p_value, same.ci_low, same.ci_high) == (0.0, 1.0, 0.0, 0.0)
    shifted = stats.paired([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])  # scipy: t = inf, p = 0
    assert shifted.p_value == 0.0 and shifted.t == math.inf
    assert (shifted.ci_low, shifted.ci_high) == (1.0, 1.0)
    one = stats.paired([0.5], [0.7])
    assert one.diff == pytest.approx(0.2) and one.p_value is None and one.ci_low is None
    with pytest.raises(ValueError):
        stats.paired([1.0, 2.0], [1.0])


def test_mean_std_is_numpys():
    mean, sd = stats.mean_std(A)
    assert mean == pytest.approx(np.mean(A)) and sd == pytest.approx(np.std(A, ddof=1))
    assert stats.mean_std([0.3]) == (0.3, None)


def test_holm_by_hand_and_against_the_definition():
    assert stats.holm([0.01, 0.04, 0.03, None]) == [
        pytest.approx(0.03),
        pytest.approx(0.06),
        pytest.approx(0.06),
        None,
    ]
    rng = np.random.default_rng(0)
    p = list(rng.uniform(0, 0.2, size=7))
    adjusted = stats.holm(p)
    order = np.argsort(p)
    m = len(p)
    expected = np.maximum.accumulate([min(1.0, p[i] * (m - k)) for k, i in enumerate(order)])
    for k, i in enumerate(order):
        assert adjusted[i] == pytest.approx(expected[k])
    assert stats.holm([0.9, 0.8]) == [1.0, 1.0]  # capped at 1


def test_seeds_needed_gives_the_power_asked_for():
    """The returned n reaches 80% power by scipy's noncentral t, and n - 1 does not."""
    sd, delta = 0.006, 0.003
    n = stats.seeds_needed(sd, delta, confidence=0.95, power=0.8)
    assert n is not None and n > 10

    def power(k: int) -> float:
        crit = sp.t.ppf(0.975, k - 1)
        nc = delta / (sd / math.sqrt(k))
        return sp.nct.sf(crit, k - 1, nc) + sp.nct.cdf(-crit, k - 1, nc)

    # the normal-approximation formula is within a seed of the exact noncentral-t answer
    assert power(n + 1) >= 0.8
    assert power(n - 2) < 0.8
    assert stats.seeds_needed(sd, 0.0) is None
    assert stats.seeds_needed(1.0, 1e-6, cap=50) is None
    assert stats.seeds_needed(sd, 2 * delta) < n
