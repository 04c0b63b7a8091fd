"""A run's per-step loss (steps.jsonl) folded for the run page, in bounded memory: a `Tail` fold
(trainlab.dashboard.tail) that keeps at most MAX_POINTS points, each bucket's lowest and highest
loss (so a spike survives) and the running smoothed loss, never the parsed rows. It is the part
of the dashboard that needs numpy, loaded when a run's page first asks for its steps.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

import numpy as np

MAX_POINTS = 2000  # points of a downsampled step curve (two per bucket)
SMOOTH_BETA = 0.98  # the smoothed loss, as `trainlab train` plots it in curves.png


class StepCurve:
    """steps.jsonl folded into at most MAX_POINTS points: the rows are cut into buckets of
    `width` rows (a power of two, doubled as the run grows) and each bucket keeps its lowest
    and highest loss; the first and last rows are always kept. Below MAX_POINTS rows, every row.
    The smoothed loss (debiased moving average, SMOOTH_BETA, non-finite losses skipped: the
    trainer's curves.png) runs over every row and is kept at the kept points."""

    COLUMNS = 4  # row index, step, loss, smoothed

    def __init__(self) -> None:
        self.total = 0
        self.width = 1
        self.kept = np.empty((self.COLUMNS, 0))
        self.first = np.empty((self.COLUMNS, 0))
        self.last = np.empty((self.COLUMNS, 0))
        self.raw, self.count = 0.0, 0  # the moving average's state (trainlab.smoothing)

    def add(self, rows: list[dict[str, Any]], starts: array) -> None:
        if not rows:
            return
        n = len(rows)
        index = np.arange(self.total, self.total + n, dtype=float)
        step = column([r.get("step") for r in rows])
        step = np.where(np.isnan(step), index + 1, step)  # no number: the row's place
        loss = column([r.get("loss") for r in rows])
        loss[~np.isfinite(loss)] = math.nan
        new = np.vstack([index, step, loss, self._smooth(loss)])
        if not self.total:
            self.first = new[:, :1]
        self.total += n
        self.last = new[:, -1:]
        while self.width > 1 or self.total > MAX_POINTS:
            if -(-self.total // self.width) <= MAX_POINTS // 2 - 1:
                break
            self.width *= 2
        self.kept = _extremes(np.hstack([self.kept, new]), self.width)

    def _smooth(self, loss: np.ndarray) -> np.ndarray:
        """The debiased moving average at each row, carried on from the last chunk."""
        out = np.full(len(loss), math.nan)
        ok = np.isfinite(loss)
        if ok.any():
            raw = moving_average(loss[ok], SMOOTH_BETA, self.raw)
            t = self.count + np.arange(1, len(raw) + 1)
            out[ok] = raw / (1 - SMOOTH_BETA**t)
            self.raw, self.count = float(raw[-1]), int(t[-1])
        return out

    def points(self) -> dict[str, Any]:
        """{total, step, loss, smoothed}: the kept points in order (NaN as None)."""
        cols = np.hstack([self.first, self.kept, self.last])
        _, keep = np.unique(cols[0], return_index=True)
        cols = cols[:, keep]
        return {
            "total": self.total,
            "step": cols[1].tolist(),
            "loss": nan_to_none(cols[2]),
            "smoothed": nan_to_none(cols[3]),
        }


def moving_average(x: np.ndarray, beta: float, start: float = 0.0, block: int = 256) -> np.ndarray:
    """avg_t = beta * avg_{t-1} + (1 - beta) * x_t from avg_0 = `start` (trainlab.smoothing's
    average before debiasing), vectorized in blocks: within a block avg_t = beta^t avg_0 +
    (1 - beta) sum_k beta^(t-k) x_k, a cumulative sum; blocks carry their last average on."""
    n = len(x)
    k = np.arange(1, block + 1)
    rows = np.concatenate([x, np.zeros(-n % block)]).reshape(-1, block)
    inner = (1 - beta) * np.cumsum(rows * beta ** (block - k), axis=1) * beta ** (k - block)
    out = np.empty_like(rows)
    decay, carry = beta**k, start
    for j in range(len(rows)):
        out[j] = decay * carry + inner[j]
        carry = out[j, -1]
    return out.ravel()[:n]


def _extremes(cols: np.ndarray, width: int) -> np.ndarray:
    """The columns of the rows with the lowest and the highest loss of each bucket of `width`
    rows (by row index; the first such row on ties, the bucket's first row when none is
    finite); `cols` are in row order, and so is the answer."""
    if width == 1 or not cols.shape[1]:
        return cols
    bucket = (cols[0] // width).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    loss = cols[2]
    finite_ = np.isfinite(loss)
    low = np.where(finite_, loss, np.inf)
    high = np.where(finite_, loss, -np.inf)
    sizes = np.diff(np.r_[starts, len(loss)])
    picks = []
    for values, reduce in ((low, np.minimum), (high, np.maximum)):
        best = np.repeat(reduce.reduceat(values, starts), sizes)
        hit = np.flatnonzero(values == best)
        of = bucket[hit]
        picks.append(hit[np.r_[True, of[1:] != of[:-1]]])  # the first hit in each bucket
    keep = np.union1d(*picks)
    return cols[:, keep]


def column(values: list[Any]) -> np.ndarray:
    """Numbers as floats; anything that is no number (None, text, a list) as NaN."""
    try:
        return np.array(values, dtype=float)  # numbers and None: one C call
    except (TypeError, ValueError):
        return np.array([v if isinstance(v, (int, float)) else math.nan for v in values], float)


def nan_to_none(a: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in a.tolist()]
