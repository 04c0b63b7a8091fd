"""Per-optimizer learning rates tuned for each surface, and the sweep that found them.

The lecture's point: comparing optimizers at one shared learning rate is unfair (AdaGrad's step
is lr * g / sqrt(grad_squared), SGD's is lr * g: the same number means different steps). So each
optimizer gets its own rate per surface, found by :func:`sweep`.
"""

from __future__ import annotations

import math

from trainlab.landscape.optimize import OPTIMIZERS, optimize
from trainlab.landscape.surfaces import SURFACE_TABLE, Surface

# A log grid with 6 points per decade from 1e-4 to 10 (each point 1.47x the previous).
GRID: tuple[float, ...] = tuple(float(f"{10 ** (-4 + i / 6):.3g}") for i in range(31))

# Found offline with `python -m trainlab.landscape.tuning` (seed 0, each surface's default
# steps), coarse to fine as the lecture tunes: every rate of GRID, then 8 rates between the
# best one's neighbours; best = fewest steps to reach and stay within the surface's tolerance,
# ties and never-reached broken by the lowest final loss.
TUNED_LRS: dict[str, dict[str, float]] = {
    "taco": {
        "sgd": 0.197,
        "momentum": 0.0681,
        "nesterov": 0.1,
        "adagrad": 8.08,
        "rmsprop": 0.104,
        "adam": 0.316,
        "adamw": 10.0,
    },
    "saddle": {
        "sgd": 0.197,
        "momentum": 0.245,
        "nesterov": 0.124,
        "adagrad": 1.19,
        "rmsprop": 0.0625,
        "adam": 0.0464,
        "adamw": 2.78,
    },
    "local-min": {
        "sgd": 0.135,
        "momentum": 0.104,
        "nesterov": 0.124,
        "adagrad": 4.84,
        "rmsprop": 0.375,
        "adam": 0.88,
        "adamw": 1.29,
    },
    "noisy": {
        "sgd": 0.0153,
        "momentum": 0.0464,
        "nesterov": 0.0653,
        "adagrad": 3.91,
        "rmsprop": 0.303,
        "adam": 0.375,
        "adamw": 0.375,
    },
    "rotated": {
        "sgd": 0.197,
        "momentum": 0.0681,
        "nesterov": 0.1,
        "adagrad": 1.47,
        "rmsprop": 0.104,
        "adam": 0.711,
        "adamw": 10.0,
    },
    "rosenbrock": {
        "sgd": 0.00197,
        "momentum": 0.00197,
        "nesterov": 0.00104,
        "adagrad": 1.53,
        "rmsprop": 0.00375,
        "adam": 0.153,
        "adamw": 0.0408,
    },
}


def _score(surface: Surface, name: str, lr: float, seed: int) -> tuple[float, float]:
    """(steps to tolerance or inf, final loss or inf) for one rate."""
    row = optimize(surface, name, lr, surface.steps, seed=seed).row(surface)
    steps = row["steps_to_tol"]
    final = row["final_loss"]
    return (math.inf if steps is None else steps, math.inf if final is None else final)


def sweep(
    surface: Surface, name: str, grid: tuple[float, ...] = GRID, refine: int = 8, seed: int = 0
) -> tuple[float, list[tuple[float, float, float]]]:
    """Tune `name` on `surface` coarse to fine: the chosen rate and (lr, steps, final) per rate.

    Coarse: every rate of `grid`. Fine: `refine` log-spaced rates between the best coarse
    rate's two neighbours. Best = fewest steps to reach and stay within the tolerance, then the
    lowest final loss (so where no rate reaches it, the lowest final loss).
    """
    table = [(lr, *_score(surface, name, lr, seed)) for lr in grid]

    def best_index() -> int:
        return min(range(len(table)), key=lambda i: (table[i][1], table[i][2], table[i][0]))

    i = grid.index(table[best_index()][0])
    low, high = grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)]
    ratio = (high / low) ** (1 / (refine + 1))
    fine = [float(f"{low * ratio**k:.3g}") for k in range(1, refine + 1)]
    table += [(lr, *_score(surface, name, lr, seed)) for lr in fine if lr not in grid]
    table.sort()
    return table[best_index()][0], table


def tuned_lr(surface: str, name: str) -> float:
    """The tuned rate for optimizer `name` on `surface`."""
    return TUNED_LRS[surface][name]


def main(argv: list[str] | None = None) -> None:
    """Print the TUNED_LRS table for the named surfaces (default all; minutes on one core)."""
    import sys

    import torch

    torch.set_num_threads(1)
    names = (sys.argv[1:] if argv is None else argv) or list(SURFACE_TABLE)
    print("TUNED_LRS = {")
    for sname in names:
        surface = SURFACE_TABLE[sname]
        chosen = {name: sweep(surface, name)[0] for name in OPTIMIZERS}
        print(f"    {sname!r}: {chosen},", flush=True)
    print("}")


if __name__ == "__main__":
    main()
