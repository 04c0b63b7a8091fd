"""The Gaussian process behind ``strategy: auto``: small, in numpy, for mixed spaces.

Contract: `Encoding` maps a space's Optuna params to one row of numbers and back (a numeric
dimension as its position in its transformed range, [0, 1]: log10 on log scales; a categorical
one as its choice's index) and snaps any row to a value the space can hold (integers rounded,
bounds clipped), so a model sees exactly the points a trial would run. `GP` fits a Matern-5/2
kernel with one inverse squared length scale per dimension (a categorical dimension's distance
is 0 when the choices are equal and 1 otherwise, so no order is invented between choices), a
signal variance and a noise variance, by maximizing the marginal likelihood plus weak priors
(L-BFGS-B from a fixed starting point: the fit depends only on the data), and gives the
posterior mean and variance at candidate rows. `log_expected_improvement` scores candidates for
minimization. Everything is deterministic given its inputs: no clocks, no global random state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.special
from optuna.distributions import FloatDistribution, IntDistribution

from trainlab.search.space import Space

SQRT5 = math.sqrt(5.0)


class Encoding:
    """A space's params as rows: numeric columns first (position in the transformed range),
    then categorical columns (choice index, as a float)."""

    def __init__(self, space: Space) -> None:
        dims = list(space)
        self.numeric = [d for d in dims if not d.is_categorical]
        self.categorical = [d for d in dims if d.is_categorical]
        self.n_numeric = len(self.numeric)
        self.width = len(dims)
        self.sizes = np.array([len(d.distribution.choices) for d in self.categorical], dtype=int)
        dists = [d.distribution for d in self.numeric]
        self.log = np.array([dist.log for dist in dists], dtype=bool)
        self.low = np.array([float(dist.low) for dist in dists])
        self.high = np.array([float(dist.high) for dist in dists])
        self.is_int = np.array([isinstance(dist, IntDistribution) for dist in dists], dtype=bool)
        self.step = np.array(
            [
                float(dist.step)
                if isinstance(dist, IntDistribution) or getattr(dist, "step", None)
                else 0.0
                for dist in dists
            ]
        )
        self.t_low = self._to_t(self.low)
        self.t_span = self._to_t(self.high) - self.t_low
        self.t_span[self.t_span <= 0] = 1.0  # a one-value range: every value encodes to 0
        # a discrete value owns the half step around it, so a uniform draw gives every value,
        # endpoints included, its share (as `sample_value` does)
        half = 0.5 * self.step
        self.draw_low = self._to_u(self.low - half)
        self.draw_high = self._to_u(self.high + half)

    def _to_t(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.log, np.log10(np.maximum(values, 1e-300)), values)

    def _to_u(self, values: np.ndarray) -> np.ndarray:
        return (self._to_t(values) - self.t_low) / self.t_span

    def encode(self, params: Mapping[str, Any]) -> np.ndarray | None:
        """One row for `params` (Optuna values), or None when a dimension is missing or a
        choice is not one of the space's."""
        row = np.empty(self.width)
        try:
            values = [float(params[d.param_name]) for d in self.numeric]
            for j, d in enumerate(self.categorical):
                row[self.n_numeric + j] = d.distribution.choices.index(params[d.param_name])
        except (KeyError, ValueError, TypeError):
            return None
        row[: self.n_numeric] = self._to_u(np.asarray(values, dtype=float))
        return row

    def snap(self, rows: np.ndarray) -> np.ndarray:
        """Rows moved onto values the space holds: numeric positions rounded to the step in
        Optuna values and clipped to the bounds, choice indices rounded and clipped."""
        out = rows.copy()
        u = out[:, : self.n_numeric]
        t = self.t_low + u * self.t_span
        values = np.where(self.log, 10.0**t, t)
        stepped = self.step > 0
        rounded = self.low + np.round((values - self.low) / np.where(stepped, self.step, 1.0)) * (
            self.step
        )
        values = np.where(stepped, rounded, values)
        values = np.clip(values, self.low, self.high)
        out[:, : self.n_numeric] = self._to_u(values)
        if self.categorical:
            cat = np.clip(np.round(out[:, self.n_numeric :]), 0, self.sizes - 1)
            out[:, self.n_numeric :] = cat
        return out

    def decode(self, row: np.ndarray) -> dict[str, Any]:
        """Optuna params of a snapped row."""
        params: dict[str, Any] = {}
        t = self.t_low + row[: self.n_numeric] * self.t_span
        for j, d in enumerate(self.numeric):
            value = 10.0 ** t[j] if self.log[j] else t[j]
            dist = d.distribution
            if isinstance(dist, IntDistribution):
                k = round((value - dist.low) / dist.step)
                params[d.param_name] = int(min(max(dist.low + k * dist.step, dist.low), dist.high))
            else:
                assert isinstance(dist, FloatDistribution)
                if dist.step is not None:
                    value = dist.low + round((value - dist.low) / dist.step) * dist.step
                params[d.param_name] = float(min(max(value, dist.low), dist.high))
        for j, d in enumerate(self.categorical):
            params[d.param_name] = d.distribution.choices[int(row[self.n_numeric + j])]
        return params

    def uniform(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """`count` snapped rows drawn uniformly (each value its share, as `sample_value`)."""
        rows = np.empty((count, self.width))
        rows[:, : self.n_numeric] = rng.uniform(
            self.draw_low, self.draw_high, (count, self.n_numeric)
        )
        if self.categorical:
            rows[:, self.n_numeric :] = np.floor(
                rng.uniform(size=(count, len(self.sizes))) * self.sizes
            )
        return self.snap(rows)

    def neighbours(
        self, rng: np.random.Generator, centres: np.ndarray, count: int, scale: float
    ) -> np.ndarray:
        """`count` snapped rows near each centre: each dimension is moved with probability
        max(1/width, 0.25) (at least one per row): a numeric one by a normal step of `scale`
        times its range (times 1, 1/3 or 1/9, one per row), a categorical one to another
        choice; the others kept."""
        rows = np.repeat(centres, count, axis=0)
        m = len(rows)
        move = rng.uniform(size=(m, self.width)) < max(1.0 / self.width, 0.25)
        move[np.arange(m), rng.integers(self.width, size=m)] = True
        shrink = 3.0 ** -rng.integers(3, size=(m, 1))
        k = self.n_numeric
        step = rng.normal(size=(m, k)) * scale * shrink
        rows[:, :k] = np.where(
            move[:, :k], np.clip(rows[:, :k] + step, self.draw_low, self.draw_high), rows[:, :k]
        )
        if self.categorical:
            # another choice: shift the index by 1 .. size-1 (mod size)
            shift = np.floor(rng.uniform(size=(m, len(self.sizes))) * (self.sizes - 1)) + 1
            moved = np.mod(rows[:, k:] + shift, self.sizes)
            rows[:, k:] = np.where(move[:, k:] & (self.sizes > 1), moved, rows[:, k:])
        return self.snap(rows)


def _matern52(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Matern-5/2 correlation at squared scaled distance `s`, and its derivative in s."""
    r = np.sqrt(np.maximum(s, 0.0))
    e = np.exp(-SQRT5 * r)
    return (1.0 + SQRT5 * r + (5.0 / 3.0) * s) * e, -(5.0 / 6.0) * (1.0 + SQRT5 * r) * e


class GP:
    """A fitted GP on rows `x` (from `Encoding`, first `n_numeric` columns numeric) and
    standardized values `y` (to minimize)."""

    # bounds of the log hyperparameters: inverse squared length scales, signal variance, noise
    LOG_W = (math.log(1e-3), math.log(1e3))
    LOG_AMP = (math.log(1e-2), math.log(1e2))
    LOG_NOISE = (math.log(1e-6), math.log(1.0))
    MAX_ITER = 50  # L-BFGS-B iterations of the fit (its result depends only on the data)

    def __init__(
        self, x: np.ndarray, y: np.ndarray, n_numeric: int, theta: np.ndarray | None = None
    ) -> None:
        """Fit to (x, y); with `theta` (log hyperparameters, as `self.theta` of another fit),
        use those instead of fitting."""
        self.x = x
        self.y = y
        self.n_numeric = n_numeric
        self.d2 = self._squared_gaps(x, x)  # (dims, n, n)
        if theta is None:
            self._fit()
        else:
            self.set_params(theta)

    def _squared_gaps(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per dimension, the squared gap between each row of a and of b (categorical: 0/1)."""
        gaps = a.T[:, :, None] - b.T[:, None, :]
        gaps[: self.n_numeric] **= 2
        gaps[self.n_numeric :] = gaps[self.n_numeric :] != 0
        return gaps

    def _neg_log_posterior(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Minus (log marginal likelihood + log prior) and its gradient in log parameters."""
        dims = len(self.d2)
        w, amp, noise = np.exp(theta[:dims]), math.exp(theta[dims]), math.exp(theta[dims + 1])
        s = np.tensordot(w, self.d2, axes=1)
        corr, dcorr = _matern52(s)
        n = len(self.y)
        k = amp * corr + noise * np.eye(n)
        try:
            chol = scipy.linalg.cho_factor(k, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return 1e10, np.zeros_like(theta)
        alpha = scipy.linalg.cho_solve(chol, self.y, check_finite=False)
        inv = scipy.linalg.cho_solve(chol, np.eye(n), check_finite=False)
        log_det = 2.0 * np.sum(np.log(np.diag(chol[0])))
        mll = -0.5 * self.y @ alpha - 0.5 * log_det - 0.5 * n * math.log(2 * math.pi)
        outer = np.outer(alpha, alpha) - inv  # d mll / d K, times 2
        grad = np.empty_like(theta)
        grad[:dims] = 0.5 * amp * w * np.tensordot(self.d2, outer * dcorr, axes=([1, 2], [0, 1]))
        grad[dims] = 0.5 * amp * np.sum(outer * corr)
        grad[dims + 1] = 0.5 * noise * np.trace(outer)
        # weak priors (as Optuna's GP): w ~ exp(-(0.1/w + 0.1 w)), amp ~ Gamma(2, 1),
        # noise ~ Gamma(1.1, 30)
        prior = -np.sum(0.1 / w + 0.1 * w) + (math.log(amp) - amp)
        prior += 0.1 * math.log(noise) - 30.0 * noise
        grad[:dims] += 0.1 / w - 0.1 * w
        grad[dims] += 1.0 - amp
        grad[dims + 1] += 0.1 - 30.0 * noise
        return -(mll + prior), -grad

    def _fit(self) -> None:
        dims = len(self.d2)
        start = np.concatenate([np.zeros(dims), [0.0, math.log(1e-2)]])
        bounds = [self.LOG_W] * dims + [self.LOG_AMP, self.LOG_NOISE]
        found = scipy.optimize.minimize(
            self._neg_log_posterior,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": self.MAX_ITER},
        )
        self.set_params(found.x if np.all(np.isfinite(found.x)) else start)

    def set_params(self, theta: np.ndarray) -> None:
        """Fix the hyperparameters and factor the kernel matrix of the data."""
        dims = len(self.d2)
        self.theta = theta
        self.w = np.exp(theta[:dims])
        self.amp = math.exp(theta[dims])
        self.noise = math.exp(theta[dims + 1])
        self._factor()

    def _factor(self) -> None:
        corr, _ = _matern52(np.tensordot(self.w, self.d2, axes=1))
        k = self.amp * corr + (self.noise + 1e-8) * np.eye(len(self.y))
        self.chol = scipy.linalg.cho_factor(k, lower=True, check_finite=False)
        self.alpha = scipy.linalg.cho_solve(self.chol, self.y, check_finite=False)

    def condition(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add observations with the fitted hyperparameters kept (no refit): pending points
        with believed values."""
        if not len(x):
            return
        self.x = np.vstack([self.x, x])
        self.y = np.concatenate([self.y, y])
        self.d2 = self._squared_gaps(self.x, self.x)
        self._factor()

    def _cross(self, x: np.ndarray) -> np.ndarray:
        """Kernel between rows `x` and the data: numeric gaps by one product, categorical
        ones by comparison."""
        k = self.n_numeric
        scale = np.sqrt(self.w[:k])
        a, b = x[:, :k] * scale, self.x[:, :k] * scale
        s = np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * a @ b.T
        for j in range(k, len(self.w)):
            s += self.w[j] * (x[:, j, None] != self.x[None, :, j])
        return self.amp * _matern52(s)[0]

    def posterior(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance (of the latent function) at rows `x`."""
        cross = self._cross(x)
        mean = cross @ self.alpha
        v = scipy.linalg.solve_triangular(self.chol[0], cross.T, lower=True, check_finite=False)
        var = np.maximum(self.amp - np.sum(v * v, axis=0), 1e-12)
        return mean, var


def normal_scores(values: np.ndarray) -> np.ndarray:
    """The standard normal quantile of each value's rank, (rank - 1/2) / n, ties sharing their
    mean rank (as ``scipy.stats.rankdata``'s "average")."""
    n = len(values)
    ranks = np.empty(n)
    ranks[np.argsort(values, kind="stable")] = np.arange(1, n + 1)
    _, tie = np.unique(values, return_inverse=True)
    ranks = (np.bincount(tie, ranks) / np.bincount(tie))[tie]
    return scipy.special.ndtri((ranks - 0.5) / n)


def log_expected_improvement(mean: np.ndarray, var: np.ndarray, best: float) -> np.ndarray:
    """log E[max(best - f, 0)] for f ~ N(mean, var): stable far into the tail."""
    sigma = np.sqrt(var)
    z = (best - mean) / sigma
    out = np.empty_like(z)
    near = z > -6.0
    zn = z[near]
    out[near] = np.log(
        np.maximum(
            zn * scipy.special.ndtr(zn) + np.exp(-0.5 * zn * zn) / math.sqrt(2 * math.pi), 1e-300
        )
    )
    zf = z[~near]
    # z Phi(z) + phi(z) = phi(z) (1/z^2 - 3/z^4 + ...) for z -> -inf
    out[~near] = -0.5 * zf * zf - 0.5 * math.log(2 * math.pi) + np.log(1 / zf**2 - 3 / zf**4)
    return out + np.log(sigma)
