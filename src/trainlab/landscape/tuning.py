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
# steps): for every surface and optimizer, the grid rate whose worst steps-to-tolerance over
# itself and its two grid neighbours is smallest (robust to lucky single rates); where no rate
# reaches the tolerance, the rate with the lowest final loss.
TUNED_LRS: dict[str, dict[str, float]] = {
    "taco": {"sgd": 0.147, "momentum": 0.147, "nesterov": 0.0681, "adagrad": 6.81,
             "rmsprop": 1.0, "adam": 0.464, "adamw": 0.464},
}


def _score(surface: Surface, name: str, lr: float, seed: int) -> tuple[float, float]:
    """(steps to tolerance or inf, final loss or inf) for one rate."""
    row = optimize(surface, name, lr, surface.steps, seed=seed).row(surface)
    steps = row["steps_to_tol"]
    final = row["final_loss"]
    return (math.inf if steps is None else steps, math.inf if final is None else final)


def sweep(surface: Surface, name: str, grid: tuple[float, ...] = GRID,
          seed: int = 0) -> tuple[float, list[tuple[float, float, float]]]:
    """Tune `name` on `surface`: the chosen rate and (lr, steps_to_tol, final_loss) per grid rate.

    Choice: smallest worst-case steps-to-tolerance over a rate and its grid neighbours; if no rate
    reaches the tolerance, the lowest final loss.
    """
    scores = [_score(surface, name, lr, seed) for lr in grid]
    table = [(lr, s, f) for lr, (s, f) in zip(grid, scores)]
    if all(math.isinf(s) for s, _ in scores):
        best = min(range(len(grid)), key=lambda i: scores[i][1])
        return grid[best], table

    def robust(i: int) -> tuple[float, float]:
        near = scores[max(0, i - 1): i + 2]
        return (max(s for s, _ in near), scores[i][0])

    best = min(range(len(grid)), key=robust)
    return grid[best], table


def tuned_lr(surface: str, name: str) -> float:
    """The tuned rate for optimizer `name` on `surface`."""
    return TUNED_LRS[surface][name]


def main() -> None:
    """Print the TUNED_LRS table (re-runs every sweep: a few minutes on one core)."""
    import torch

    torch.set_num_threads(1)
    print("TUNED_LRS = {")
    for sname, surface in SURFACE_TABLE.items():
        chosen = {name: sweep(surface, name)[0] for name in OPTIMIZERS}
        print(f"    {sname!r}: {chosen},", flush=True)
    print("}")


if __name__ == "__main__":
    main()
