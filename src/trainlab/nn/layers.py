"""Our regularization layers: DropConnect (drops weights) and stochastic depth (drops branches).

Both are inverted, like torch's Dropout: what is kept is scaled by 1/(1-p) at train time, so the
expected output at train time equals the output at test time and nothing changes at test time.
Masks are drawn from torch's default generator, as nn.Dropout does; the trainer seeds it.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainlab.errors import UserError

__all__ = [
    "DropConnectConv",
    "DropConnectConv1d",
    "DropConnectConv2d",
    "DropConnectLinear",
    "FractionalMaxPool2d",
    "StochasticDepth",
    "check_drop_prob",
    "constant_drop_probs",
    "linear_drop_probs",
]


def check_drop_prob(p: float, field: str) -> float:
    """Return p as a float if it is a drop probability in [0, 1); else UserError naming `field`."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p):
        raise UserError(f"{field}: must be a drop probability in [0, 1), got {p!r}")
    if not 0.0 <= p < 1.0:
        raise UserError(f"{field}: must be a drop probability in [0, 1), got {p!r}")
    return float(p)


class _DropConnect:
    """Shared part of the DropConnect layers: the masked weight of one forward pass."""

    weight: Tensor
    training: bool
    p: float

    def masked_weight(self) -> Tensor:
        """The weight this forward pass uses: masked and rescaled in train mode, plain in eval.

        DropConnect (Wan et al. 2013), inverted so that test time uses the expected weights:
            W_tilde = (M * W) / (1 - p),   M_ij ~ Bernoulli(1 - p),   E[W_tilde] = W.
        One mask M per forward pass, shared by every example of the batch (the standard, cheap
        choice: one weight-sized mask instead of one per example). The bias is not masked.
        This is exactly inverted dropout applied to the weight tensor, so torch's kernel does it.
        """
        return F.dropout(self.weight, self.p, self.training)


class DropConnectLinear(_DropConnect, nn.Linear):
    """nn.Linear whose weights (not activations) are dropped with probability p at train time.

    A subclass of nn.Linear: state_dict keys stay `weight`/`bias`, so checkpoints load into a
    plain nn.Linear and back, and transfer-learning code treats it like any Linear.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        p: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.p = check_drop_prob(p, f"{type(self).__name__}.p")

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.masked_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


class DropConnectConv1d(_DropConnect, nn.Conv1d):
    """nn.Conv1d with DropConnect on its kernel weights (state_dict keys unchanged)."""

    def __init__(self, *args, p: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.p = check_drop_prob(p, f"{type(self).__name__}.p")

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, self.masked_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


class DropConnectConv2d(_DropConnect, nn.Conv2d):
    """nn.Conv2d with DropConnect on its kernel weights (state_dict keys unchanged)."""

    def __init__(self, *args, p: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.p = check_drop_prob(p, f"{type(self).__name__}.p")

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, self.masked_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


def DropConnectConv(  # noqa: N802 - a factory named like the layers it builds
    dims: Literal[1, 2],
    in_ch: int,
    out_ch: int,
    kernel_size: int | tuple[int, ...],
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | str = 0,
    bias: bool = True,
    p: float = 0.0,
    **kwargs,
) -> DropConnectConv1d | DropConnectConv2d:
    """Build a DropConnectConv1d (dims=1) or DropConnectConv2d (dims=2); kwargs go to nn.ConvNd."""
    classes = {1: DropConnectConv1d, 2: DropConnectConv2d}
    if dims not in classes:
        raise ValueError(f"DropConnectConv: dims must be 1 or 2, got {dims!r}")
    return classes[dims](
        in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=bias, p=p, **kwargs
    )


class StochasticDepth(nn.Module):
    """Drop a residual branch for whole examples at train time; the identity at test time.

    Use on the branch output: `x + sd(branch(x))`. Stochastic depth (Huang et al. 2016), inverted:
        y = x + (b / (1 - p)) * branch(x),   b ~ Bernoulli(1 - p), one draw per example,
    so E[y] at train time equals the full network's y = x + branch(x) used at test time.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = check_drop_prob(p, f"{type(self).__name__}.p")

    def forward(self, branch: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return branch
        keep = 1.0 - self.p
        shape = (branch.shape[0],) + (1,) * (branch.ndim - 1)
        survive = branch.new_empty(shape).bernoulli_(keep).div_(keep)
        return branch * survive

    def extra_repr(self) -> str:
        return f"p={self.p}"


class FractionalMaxPool2d(nn.FractionalMaxPool2d):
    """torch's fractional max pooling (Graham 2014) with a fixed pooling grid at test time.

    Train mode: torch's layer, a fresh pseudo-random grid of overlapping 2x2 regions per image and
    channel (drawn from torch's default generator, which the trainer seeds), shrinking the map by
    `output_ratio` (1/sqrt(2) by default) instead of 1/2. Eval mode: torch's layer would still
    draw a new grid on every call, so the same image could get different predictions; here every
    image uses the grid of the sample u = 0.5, so evaluation is deterministic.
    """

    def __init__(self, kernel_size: int = 2, output_ratio: float = 0.7071) -> None:
        super().__init__(kernel_size, output_ratio=output_ratio)

    def forward(self, input: Tensor) -> Tensor:
        if self.training:
            return super().forward(input)
        batch = input if input.ndim == 4 else input.unsqueeze(0)
        samples = batch.new_full((batch.shape[0], batch.shape[1], 2), 0.5)
        out = F.fractional_max_pool2d(
            batch,
            self.kernel_size,
            self.output_size,
            self.output_ratio,
            False,
            _random_samples=samples,
        )
        return out if input.ndim == 4 else out.squeeze(0)


def linear_drop_probs(
    p_last: float, n_blocks: int, field: str = "model.stochastic_depth"
) -> list[float]:
    """Per-block drop probabilities growing linearly from 0 (first block) to p_last (last block).

    Huang et al.'s linear decay rule for the survival probability: deeper blocks, which refine
    rather than build features, are dropped more often. With one block it gets p_last.
    """
    p_last = check_drop_prob(p_last, field)
    if n_blocks < 0:
        raise ValueError(f"linear_drop_probs: n_blocks must be >= 0, got {n_blocks}")
    if n_blocks == 1:
        return [p_last]
    return [p_last * i / (n_blocks - 1) for i in range(n_blocks)]


def constant_drop_probs(
    p: float, n_blocks: int, field: str = "model.stochastic_depth"
) -> list[float]:
    """The same drop probability p for every block (Huang et al.'s uniform rule)."""
    p = check_drop_prob(p, field)
    if n_blocks < 0:
        raise ValueError(f"constant_drop_probs: n_blocks must be >= 0, got {n_blocks}")
    return [p] * n_blocks
