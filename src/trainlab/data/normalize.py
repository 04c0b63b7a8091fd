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
