"""Run one optimizer on one surface from the surface's start: the trajectory and its numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trainlab import names, optim
from trainlab.errors import UserError
from trainlab.landscape.surfaces import Surface

# the config names of trainlab.optim that work on a 2-parameter loss with minibatch-style steps:
# all but the full-batch ones (their line searches make no path to compare step by step)
OPTIMIZERS = names.MINIBATCH_OPTIMIZERS

DIVERGED = 1e8  # a parameter this large (or not finite) means the run blew up


def make_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """Our optimizer called `name` (momentum = SGD with momentum 0.9, as in configs) at `lr`."""
    if name not in OPTIMIZERS:
        raise UserError(f"--optimizers: each must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    return optim.create(name, params, lr=lr)


@dataclass
class Trajectory:
    """Where an optimizer went: points[k] and losses[k] after k steps (k = 0 is the start)."""

    optimizer: str
    lr: float
    points: torch.Tensor  # (n + 1, 2), float64
    losses: torch.Tensor  # (n + 1,), noise-free loss at each point
    diverged: bool

    def steps_to_tol(self, surface: Surface) -> int | None:
        """Steps after which loss - min stays <= tol to the end; None if it does not end there.

        "Reached and stayed": passing through the tolerance on the way elsewhere does not count.
        """
        inside = self.losses - surface.min_value <= surface.tol
        if self.diverged or not bool(inside[-1]):
            return None
        outside = torch.nonzero(~inside)
        return int(outside[-1]) + 1 if len(outside) else 0

    def path_length(self) -> float:
        """Total distance travelled: sum_k |p_{k+1} - p_k|."""
        return float((self.points[1:] - self.points[:-1]).norm(dim=1).sum())

    def row(self, surface: Surface) -> dict:
        """The table row: optimizer, lr, steps_to_tol, final_loss, path_length (, diverged)."""
        final = float(self.losses[-1])
        return {
            "optimizer": self.optimizer,
            "lr": self.lr,
            "steps_to_tol": self.steps_to_tol(surface),
            "final_loss": final if math.isfinite(final) and not self.diverged else None,
            "path_length": self.path_length(),
            "diverged": self.diverged,
        }


def optimize(surface: Surface, name: str, lr: float, steps: int, seed: int = 0) -> Trajectory:
    """Take `steps` steps of optimizer `name` on `surface` from its start.

    On a noisy surface each gradient gets N(0, noise^2) added per component, drawn from a
    torch.Generator seeded with `seed`, so every optimizer sees the same noise sequence.
    """
    param = torch.tensor(surface.start, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer(name, [param], lr)
    generator = torch.Generator().manual_seed(seed)
    points = torch.full((steps + 1, 2), math.nan, dtype=torch.float64)
    losses = torch.full((steps + 1,), math.nan, dtype=torch.float64)
    diverged = False
    for k in range(steps + 1):
        optimizer.zero_grad()
        loss = surface(param[0], param[1])
        points[k] = param.detach()
        losses[k] = loss.detach()
        if not torch.isfinite(loss) or param.detach().abs().max() > DIVERGED:
            diverged = True
            break
        if k == steps:
            break
        loss.backward()
        if surface.noise:
            noise = torch.randn(2, generator=generator, dtype=torch.float64)
            param.grad.add_(noise, alpha=surface.noise)
        optimizer.step()
    if diverged:
        points, losses = points[: k + 1], losses[: k + 1]
    return Trajectory(name, lr, points, losses, diverged)
