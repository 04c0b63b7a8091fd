"""Growing JSON-lines files read from where the last read stopped, in bounded memory.

A `Tail` remembers how far it has read a file (the end of its last complete line) and, on the
next poll, parses only what was appended since; a file that was replaced or cut (another inode,
or shorter than what was read) is read again from the start. A line that is not one JSON object
ends the readable part (trainlab.rundir.parse_jsonl's rule): nothing after it is read until the
file is replaced. A last line without its newline is taken once it parses (the trainer ends every
line; a line being written does not parse).

What a tail keeps of the rows is its `fold`'s business: `Epochs` keeps where each line starts
(8 bytes a row) and re-reads the rows a page asks for; `StepCurve` keeps only the downsampled
per-step loss (at most MAX_POINTS points, each bucket's lowest and highest loss, so a spike
survives) and the running smoothed loss, never the parsed rows: a run of 2M steps costs the
server a few hundred kilobytes, not a gigabyte, and an unchanged file costs one stat per poll.
"""

from __future__ import annotations

import math
import os
import threading
from array import array
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from trainlab.rundir import parse_jsonl

CHUNK = 2 << 20  # bytes parsed at a time (a 2M-step file is read in ~60 pieces)
MAX_POINTS = 2000  # points of a downsampled step curve (two per bucket)
SMOOTH_BETA = 0.98  # the smoothed loss, as `trainlab train` plots it in curves.png


class Fold(Protocol):
    def add(self, rows: list[dict[str, Any]], starts: np.ndarray) -> None: ...


class Tail:
    """Reads `path` on from where the last `read` stopped into `fold` (a fresh one from
    `make()` when the file was replaced)."""

    def __init__(self, make: type) -> None:
        self.make = make
        self.lock = threading.Lock()  # held by its reader (requests run in threads)
        self.fold: Fold = make()
        self.inode: int | None = None
        self.offset = 0  # bytes read: the end of the last row taken
        self.ended = False  # a damaged line was met: nothing after it is read
        self.unterminated = False  # the last row taken had no newline (yet)

    def read(self, path: Path) -> Any:
        """The fold, brought up to the file's end (an empty fold when the file is missing)."""
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            self._reset(None)
            return self.fold
        if st.st_ino != self.inode or st.st_size < self.offset:
            self._reset(st.st_ino)
        if st.st_size == self.offset or self.ended:
            return self.fold
        try:
            with open(path, "rb") as f:
                f.seek(self.offset)
                while not self.ended and self._chunk(f.read(CHUNK), f.tell() >= st.st_size):
                    f.seek(self.offset)
        except OSError:
            pass  # being replaced: the next poll reads it
        return self.fold

    def _reset(self, inode: int | None) -> None:
        self.fold, self.inode, self.offset = self.make(), inode, 0
        self.ended = self.unterminated = False

    def _chunk(self, data: bytes, at_end: bool) -> bool:
        """Fold the complete lines of `data` (read at self.offset); whether to read on."""
        if self.unterminated and data[:1] == b"\n":  # the newline of a row already taken
            data, self.offset, self.unterminated = data[1:], self.offset + 1, False
        if not data:
            return False
        cut = data.rfind(b"\n") + 1
        if cut == 0 and not at_end:  # one line longer than CHUNK: no row is that long
            self.ended = True
            return False
        body = data[:cut]
        text = body.decode(errors="replace")  # a byte that is no UTF-8 reads as U+FFFD
        starts = _starts(body, self.offset)
        lines = len(starts) - 1
        rows = parse_jsonl(text) if lines else []
        if len(rows) < lines:
            self.ended = True
            self.fold.add(rows, starts[: len(rows)])
            self.offset = int(starts[len(rows)])
            return False
        taken = self.offset + cut
        if at_end and cut < len(data):
            tail = parse_jsonl(data[cut:].decode(errors="replace"))
            if tail:  # a last line without its newline that is one whole object
                starts = np.append(starts, taken)
                rows += tail
                taken, self.unterminated = self.offset + len(data), True
        self.fold.add(rows, starts[: len(rows)])
        self.offset = taken
        return not at_end


def _starts(body: bytes, base: int) -> np.ndarray:
    """File offsets where each line of `body` (read at `base`) starts, and where it ends."""
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10) + 1
    return np.r_[0, ends].astype(np.int64) + base


class Epochs:
    """metrics.jsonl: where each row starts (rows are re-read when asked for), the last epoch
    and the best validation accuracy so far."""

    def __init__(self) -> None:
        self.starts = array("q")
        self.last: dict[str, Any] | None = None
        self.best_val: float | None = None

    def add(self, rows: list[dict[str, Any]], starts: np.ndarray) -> None:
        self.starts.frombytes(starts.astype(np.int64).tobytes())
        for row in rows:
            v = finite(row.get("val_accuracy"))
            if v is not None and (self.best_val is None or v > self.best_val):
                self.best_val = v
        if rows:
            self.last = rows[-1]

    def __len__(self) -> int:
        return len(self.starts)


def read_rows(path: Path, epochs: Epochs, end: int, first: int = 0) -> list[dict[str, Any]]:
    """Rows first.. of a file `epochs` has read up to byte `end` (re-read from disk)."""
    if first >= len(epochs):
        return []
    with open(path, "rb") as f:
        f.seek(epochs.starts[first])
        data = f.read(end - epochs.starts[first])
    return parse_jsonl(data.decode(errors="replace"))[: len(epochs) - first]


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

    def add(self, rows: list[dict[str, Any]], starts: np.ndarray) -> None:
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


def finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def column(values: list[Any]) -> np.ndarray:
    """Numbers as floats; anything that is no number (None, text, a list) as NaN."""
    try:
        return np.array(values, dtype=float)  # numbers and None: one C call
    except (TypeError, ValueError):
        return np.array([v if isinstance(v, (int, float)) else math.nan for v in values], float)


def nan_to_none(a: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in a.tolist()]
