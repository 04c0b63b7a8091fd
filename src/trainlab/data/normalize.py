"""The lecture's preprocessing: zero-centre and scale inputs with statistics of the training
split only, kept with the run so evaluation normalizes new data the same way."""

from __future__ import annotations

from dataclasses import dataclass

import torch

STD_FLOOR = 1e-6  # constant features keep their value instead of dividing by zero


@dataclass
class Normalizer:
    """x -> (x - mean) / std, with mean/std shaped to broadcast over (N, ...) batches."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, kind: str) -> Normalizer:
        dims = (0,) if kind == "vector" else tuple(d for d in range(x.dim()) if d != 1)
        mean = x.mean(dim=dims, keepdim=True)[0]
        std = x.std(dim=dims, keepdim=True)[0].clamp_min(STD_FLOOR)
        return cls(mean, std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> Normalizer:
        return cls(state["mean"], state["std"])


class RunningMoments:
    """Mean and standard deviation accumulated batch by batch (float64, shifted by the first
    batch's mean against cancellation), so the statistics of a streamed sample never need the
    sample in memory; `normalizer()` gives what Normalizer.fit gives on the concatenation."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.count = 0
        self.shift: torch.Tensor | None = None
        self.total: torch.Tensor | None = None
        self.squares: torch.Tensor | None = None

    def _dims(self, x: torch.Tensor) -> tuple[int, ...]:
        return (0,) if self.kind == "vector" else tuple(d for d in range(x.dim()) if d != 1)

    def update(self, x: torch.Tensor) -> None:
        dims = self._dims(x)
        x = x.double()
        if self.shift is None:
            self.shift = x.mean(dim=dims, keepdim=True)
        centred = x - self.shift
        total = centred.sum(dim=dims, keepdim=True)
        squares = centred.square().sum(dim=dims, keepdim=True)
        self.total = total if self.total is None else self.total + total
        self.squares = squares if self.squares is None else self.squares + squares
        self.count += x.numel() // total.numel()

    def normalizer(self) -> Normalizer:
        assert self.shift is not None and self.total is not None and self.squares is not None
        mean = self.total / self.count
        var = (self.squares - self.count * mean.square()) / max(self.count - 1, 1)
        std = var.clamp_min(0).sqrt()
        return Normalizer((mean + self.shift)[0].float(), std[0].float().clamp_min(STD_FLOOR))
