"""What the search driver tells a user interface: `Display`, whose no-op methods the CLI's live
curve and table override. Its own module, free of Optuna and torch, so that the CLI defines its
displays without loading the driver (the parser is built without either).
"""

from __future__ import annotations

from typing import Any


class Display:
    """What the driver tells a user interface (the CLI's live curve or table); no-ops here."""

    def note(self, message: str) -> None:
        """A one-line remark for the user (workers capped, a Ray trial re-run on another node)."""

    def start(
        self,
        study: str,
        total: int,
        done: int,
        workers: int,
        best: tuple[int, float] | None = None,
    ) -> None:
        """`done` trials of `total` finished already (a resumed study), `best` (number, value)
        the best of them."""

    def trial_started(self, number: int, params: dict[str, Any], epochs: int) -> None: ...

    def epoch(self, number: int, epoch: int, value: float | None) -> None: ...

    def trial_finished(
        self, number: int, state: str, value: float | None, finished: int | None = None
    ) -> None:
        """`finished`: the study's finished trials when other drivers share it (else counted)."""

    def retest_begin(self, total: int, done: int) -> None: ...

    def retest_started(self, trial: int, seed: int, epochs: int) -> None: ...

    def retest_epoch(self, trial: int, seed: int, epoch: int, value: float | None) -> None: ...

    def retest_finished(self, trial: int, seed: int, value: float | None) -> None: ...

    def stop(self) -> None: ...


def best_of(
    best: tuple[int, float] | None, number: int, state: str, value: float | None
) -> tuple[int, float] | None:
    """The best (trial, value) so far once trial `number` finished in `state` with `value`."""
    if state == "complete" and value is not None and (best is None or value > best[1]):
        return (number, value)
    return best
