"""Growing JSON-lines files read from where the last read stopped, in bounded memory.

A `Tail` remembers how far it has read a file (the end of its last complete line) and, on the
next poll, parses only what was appended since; a file that was replaced or cut (another inode,
or shorter than what was read) is read again from the start. A line that is not one JSON object
ends the readable part (trainlab.rundir.parse_jsonl's rule): nothing after it is read until the
file is replaced. A last line without its newline is taken once it parses (the trainer ends every
line; a line being written does not parse).

What a tail keeps of the rows is its `fold`'s business: `Epochs` keeps where each line starts
(8 bytes a row) and re-reads the rows a page asks for; `trainlab.dashboard.stepcurve.StepCurve`
keeps only the downsampled per-step loss and the running smoothed loss, never the parsed rows: a
run of 2M steps costs the server a few hundred kilobytes, not a gigabyte, and an unchanged file
costs one stat per poll. This module needs no numpy (the index's first answer does not wait for
it; the step curve, on a run's page, does).
"""

from __future__ import annotations

import math
import os
import threading
from array import array
from itertools import accumulate
from pathlib import Path
from typing import Any, Protocol

from trainlab.rundir import parse_jsonl

CHUNK = 2 << 20  # bytes parsed at a time (a 2M-step file is read in ~60 pieces)


class Fold(Protocol):
    def add(self, rows: list[dict[str, Any]], starts: array) -> None: ...


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
                starts.append(taken)
                rows += tail
                taken, self.unterminated = self.offset + len(data), True
        self.fold.add(rows, starts[: len(rows)])
        self.offset = taken
        return not at_end


def _starts(body: bytes, base: int) -> array:
    """File offsets where each line of `body` (read at `base`, ending in a newline) starts,
    and where the last one ends (C-level loops: about 10 ms a MB, a fifth of parsing it as JSON)."""
    lengths = map((1).__add__, map(len, body.split(b"\n")[:-1]))
    return array("q", accumulate(lengths, initial=base))


class Epochs:
    """metrics.jsonl: where each row starts (rows are re-read when asked for), the last epoch
    and the best validation accuracy so far."""

    def __init__(self) -> None:
        self.starts = array("q")
        self.last: dict[str, Any] | None = None
        self.best_val: float | None = None

    def add(self, rows: list[dict[str, Any]], starts: array) -> None:
        self.starts.extend(starts)
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


def finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
