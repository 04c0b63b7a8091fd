"""`trainlab landscape`: run several optimizers from one start on one surface, table + picture."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from trainlab.errors import UserError
from trainlab.landscape import plot, surfaces
from trainlab.landscape.optimize import OPTIMIZERS, Trajectory, optimize
from trainlab.landscape.tuning import tuned_lr

DEFAULT_DIR = Path("runs") / "landscape"
_IMAGE_SUFFIXES = (".png", ".svg", ".pdf")


def _optimizer_names(optimizers: str | Sequence[str] | None) -> list[str]:
    if optimizers is None:
        return list(OPTIMIZERS)
    names = optimizers.split(",") if isinstance(optimizers, str) else list(optimizers)
    names = [str(n).strip() for n in names if str(n).strip()]
    bad = [n for n in names if n not in OPTIMIZERS]
    if bad or not names:
        raise UserError(
            f"--optimizers: must be a comma-separated list of {', '.join(OPTIMIZERS)}"
            f", got {','.join(names) if names else 'nothing'}"
        )
    return list(dict.fromkeys(names))  # keep order, drop repeats


def _learning_rates(
    surface: str, names: list[str], lrs: Mapping[str, float] | None
) -> dict[str, float]:
    chosen = {name: tuned_lr(surface, name) for name in names}
    for name, lr in (lrs or {}).items():
        if name not in OPTIMIZERS:
            raise UserError(f"--lrs: keys must be among {', '.join(OPTIMIZERS)}, got {name!r}")
        ok = isinstance(lr, int | float) and not isinstance(lr, bool) and math.isfinite(lr)
        if not ok or lr <= 0:
            raise UserError(f"--lrs: {name} must be a finite number > 0, got {lr!r}")
        if name in chosen:
            chosen[name] = float(lr)
    return chosen


def _output_path(surface: str, out: str | Path | None) -> Path:
    path = DEFAULT_DIR / f"{surface}.png" if out is None else Path(out)
    if path.suffix.lower() not in _IMAGE_SUFFIXES:
        raise UserError(f"--out: must end in {', '.join(_IMAGE_SUFFIXES)}, got {str(path)!r}")
    if path.exists() and path.is_dir():
        raise UserError(f"--out: must be a file name, got the folder {str(path)!r}")
    return path


def trajectories(
    surface: str = "taco",
    optimizers: str | Sequence[str] | None = None,
    steps: int | None = None,
    lrs: Mapping[str, float] | None = None,
    seed: int = 0,
) -> list[Trajectory]:
    """Run each optimizer (at its tuned or given lr) from the surface's start; no files."""
    s = surfaces.get(surface)
    names = _optimizer_names(optimizers)
    rates = _learning_rates(surface, names, lrs)
    if steps is None:
        steps = s.steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"--steps: must be a whole number >= 1, got {steps!r}")
    return [optimize(s, name, rates[name], steps, seed=seed) for name in names]


def run(
    surface: str = "taco",
    optimizers: str | Sequence[str] | None = None,
    steps: int | None = None,
    lrs: Mapping[str, float] | None = None,
    out: str | Path | None = None,
    gif: bool = False,
    seed: int = 0,
) -> dict:
    """Compare optimizers on one surface; draw the picture (and a GIF) and return the table.

    Returns {"surface", "claim", "steps", "tol", "min_loss", "plot", "gif", "rows"}; each row is
    {optimizer, lr, steps_to_tol (None if not reached), final_loss, path_length, diverged}.
    """
    s = surfaces.get(surface)
    path = _output_path(surface, out)
    steps = s.steps if steps is None else steps
    runs = trajectories(surface, optimizers, steps, lrs, seed)
    plot.draw(s, runs, path)
    gif_path = plot.animate(s, runs, path.with_suffix(".gif")) if gif else None
    return {
        "surface": surface,
        "claim": s.claim,
        "steps": steps,
        "tol": s.tol,
        "min_loss": s.min_value,
        "plot": str(path),
        "gif": None if gif_path is None else str(gif_path),
        "rows": [t.row(s) for t in runs],
    }
