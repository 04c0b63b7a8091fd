"""The lecture's ratio of update size to weight size (about 1e-3), as the trainer records it.

One definition, used by the trainer's records (`update_ratio`), the advice rules and the tests:

    ratio_t = ||w_t - w_{t-1}|| / ||w_{t-1}||

with global L2 norms over all trainable parameters together (weights, biases, norm layers' scales:
what the optimizer actually moved, weight decay included), measured at steps spread evenly over
the epoch; the epoch's `update_ratio` is the median of those steps' ratios. Global norms, because
a per-tensor or per-group statistic changes meaning with the model's layout (biases and
weight-decay-exempt groups move at their own rates); the median over steps, because one spiky
minibatch should not decide what the epoch's typical step was. Read from the parameters, so any
optimizer (ours or torch.optim) is measured the same way.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import torch

SAMPLES_PER_EPOCH = 8  # steps measured per epoch: enough for a median, cheap on big models


def update_ratio(before: Sequence[torch.Tensor], after: Sequence[torch.Tensor]) -> torch.Tensor:
    """||after - before|| / ||before||, global norms over all tensors (a 0-d tensor)."""
    before, after = list(before), list(after)
    delta = torch._foreach_sub(after, before)
    num = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(delta)))
    den = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(before)))
    return num / den.clamp_min(torch.finfo(den.dtype).tiny)


class UpdateRatioMeter:
    """Measures `update_ratio` during an epoch: `before_step(i)` / `after_step()` around the
    optimizer step of the epoch's i-th minibatch (0-based), `epoch_value()` at the epoch's end.

    The measured steps are a function of i and steps_per_epoch only (every k-th minibatch,
    at most SAMPLES_PER_EPOCH), so a resumed run records the same numbers."""

    def __init__(self, params: Sequence[torch.Tensor], steps_per_epoch: int) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.stride = max(1, steps_per_epoch // SAMPLES_PER_EPOCH)
        self._before: list[torch.Tensor] | None = None
        self._ratios: list[torch.Tensor] = []

    def before_step(self, i: int) -> None:
        """Keep a copy of the weights when step i is measured (a step that is not costs
        nothing: no copy, no grad-mode switch)."""
        if i % self.stride != 0:
            self._before = None
            return
        with torch.no_grad():
            self._before = [p.detach().clone() for p in self.params]

    def after_step(self) -> None:
        if self._before is not None and self.params:
            with torch.no_grad():
                self._ratios.append(update_ratio(self._before, [p.detach() for p in self.params]))
            self._before = None

    def epoch_value(self) -> float | None:
        """The median over the epoch's measured steps (None when none was measured); resets."""
        values = torch.stack(self._ratios).tolist() if self._ratios else []
        self._ratios = []
        finite = [v for v in values if math.isfinite(v)]
        return statistics.median(finite) if finite else None
