"""The lecture's 2-parameter loss surfaces, each with the claim about optimizers it illustrates."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from trainlab import names
from trainlab.errors import UserError

Tensor = torch.Tensor


@dataclass(frozen=True)
class Surface:
    """A loss f(x, y) with a start, its global minimum and what the lecture says happens on it."""

    name: str
    title: str
    claim: str
    fn: Callable[[Tensor, Tensor], Tensor]
    start: tuple[float, float]
    minimum: tuple[float, float]
    tol: float  # "converged" once f(x, y) - f(minimum) <= tol
    steps: int  # default number of optimizer steps
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    noise: float = 0.0  # std of Gaussian noise added to each gradient component
    landmarks: tuple[tuple[str, tuple[float, float]], ...] = ()  # other points worth marking

    @property
    def min_value(self) -> float:
        x, y = (torch.tensor(v, dtype=torch.float64) for v in self.minimum)
        return float(self.fn(x, y))

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        return self.fn(x, y)


# taco shell: f = (a x^2 + b y^2) / 2, condition number b / a = 100 (steep in y, flat in x)
TACO_A, TACO_B = 0.1, 10.0


def _taco(x: Tensor, y: Tensor) -> Tensor:
    return 0.5 * (TACO_A * x**2 + TACO_B * y**2)


# the same ellipse turned by 45 degrees: the steep and flat directions mix both parameters
_C = math.cos(math.pi / 4)


def _rotated(x: Tensor, y: Tensor) -> Tensor:
    return _taco(_C * x + _C * y, -_C * x + _C * y)


def _rotate_start(x: float, y: float) -> tuple[float, float]:
    """Inverse rotation, so the rotated surface starts at the same point of the same ellipse."""
    return (_C * x - _C * y, _C * x + _C * y)


# saddle at (0, 0): steep valley in x (curvature 10), gentle hill in y (curvature -SADDLE_C),
# minima at y = +-SADDLE_R: f = 5 x^2 + c (y^2 - r^2)^2 / (4 r^2)
SADDLE_C, SADDLE_R = 0.2, 2.0


def _saddle(x: Tensor, y: Tensor) -> Tensor:
    return 5.0 * x**2 + SADDLE_C * (y**2 - SADDLE_R**2) ** 2 / (4 * SADDLE_R**2)


# a shallow local minimum (x ~ -2.1) on the way to a deeper global one (x ~ 2.35), in a valley
# steep in y (curvature 10), which caps the learning rate SGD can use without diverging
def _local_min(x: Tensor, y: Tensor) -> Tensor:
    return 0.2 * (0.1 * x**4 - x**2 - 0.5 * x) + 5.0 * y**2


def _stationary_local(x0: float) -> tuple[float, float]:
    """The stationary point of the local-min surface nearest x0 (Newton on its x-profile)."""
    x = x0
    for _ in range(50):  # g'(x) = 0.4 x^3 - 2 x - 0.5 = 0
        x = x - (0.4 * x**3 - 2 * x - 0.5) / (1.2 * x**2 - 2)
    return (x, 0.0)


_LOCAL = (("local minimum", _stationary_local(-2.0)),)


def _rosenbrock(x: Tensor, y: Tensor) -> Tensor:
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


_TACO_START = (-9.0, 1.0)

SURFACE_TABLE: dict[str, Surface] = {
    s.name: s
    for s in (
        Surface(
            "taco",
            "Taco shell: condition number 100",
            "SGD zigzags across the steep direction and crawls along the flat one; "
            "momentum builds up speed along the valley.",
            _taco,
            _TACO_START,
            (0.0, 0.0),
            tol=1e-3,
            steps=300,
            xlim=(-10, 2.5),
            ylim=(-2, 2),
        ),
        Surface(
            "saddle",
            "Saddle point",
            "Near the saddle the gradient is tiny: SGD crawls, momentum rolls through.",
            _saddle,
            (-1.3, 1e-3),
            (0.0, SADDLE_R),
            tol=1e-3,
            steps=300,
            xlim=(-1.5, 1.5),
            ylim=(-1, 3),
            landmarks=(("saddle point", (0.0, 0.0)),),
        ),
        Surface(
            "local-min",
            "Local minimum",
            "SGD stops in the first (local) minimum; momentum overshoots it into the global one.",
            _local_min,
            (-4.0, 0.5),
            _stationary_local(2.3),
            tol=1e-3,
            steps=300,
            xlim=(-4.5, 4),
            ylim=(-2, 2),
            landmarks=_LOCAL,
        ),
        Surface(
            "noisy",
            "Local minimum, noisy gradients",
            "Minibatch gradients are noisy; momentum averages the noise out.",
            _local_min,
            (-4.0, 0.5),
            _stationary_local(2.3),
            tol=0.1,
            steps=300,
            xlim=(-4.5, 4),
            ylim=(-2, 2),
            noise=0.3,
            landmarks=_LOCAL,
        ),
        Surface(
            "rotated",
            "Rotated taco shell: condition number 100, axes at 45 degrees",
            "Per-parameter adaptivity (AdaGrad, RMSProp, Adam) rescales the axes, "
            "so it cannot fix an ill-conditioned valley that is not aligned with them.",
            _rotated,
            _rotate_start(*_TACO_START),
            (0.0, 0.0),
            tol=1e-3,
            steps=300,
            xlim=(-8, 2),
            ylim=(-8, 2),
        ),
        Surface(
            "rosenbrock",
            "Rosenbrock's banana",
            "A curved, narrow valley: the minimum is easy to find, hard to reach.",
            _rosenbrock,
            (-1.5, 2.0),
            (1.0, 1.0),
            tol=1e-6,
            steps=2000,
            xlim=(-2, 2),
            ylim=(-1, 3),
        ),
    )
}

names.covers(SURFACE_TABLE, names.SURFACES, "landscape surfaces")
SURFACES = names.SURFACES


def get(name: str) -> Surface:
    """The surface called `name`; an unknown name is a user error."""
    if name not in SURFACE_TABLE:
        raise UserError(f"--surface: must be one of {', '.join(SURFACES)}, got {name!r}")
    return SURFACE_TABLE[name]
