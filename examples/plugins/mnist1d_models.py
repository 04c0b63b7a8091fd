"""The four models of the MNIST-1D paper (Greydanus 2020, "Scaling down deep learning", table 1),
written as a user would write plugin models: plain torch.nn, one factory per model, each called
by trainlab as factory(input_shape, num_classes, **model.args) and mapping a batch of signals
(N, 1, 40) to logits (N, num_classes).

The architectures follow the paper's code (mnist1d/models.py): logistic regression on the 40
values; an MLP with two hidden layers of 100 ReLU units; a CNN of three stride-2 convolutions with
25 channels (kernel 5, then 3 and 3, padding 1) and a linear layer on the flattened features; a
bidirectional GRU with 6 hidden units per direction whose outputs at all 40 time steps feed a
linear layer. Use them with `model.kind: mnist1d_models:cnn` (the config's folder is on the
lookup path).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _length(input_shape: tuple[int, ...]) -> int:
    """Values per example: 40 for MNIST-1D's (1, 40) signals."""
    return math.prod(input_shape)


def logistic(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Multinomial logistic regression: one linear layer on the flattened signal."""
    return nn.Sequential(nn.Flatten(), nn.Linear(_length(input_shape), num_classes))


def mlp(input_shape: tuple[int, ...], num_classes: int, hidden: int = 100) -> nn.Module:
    """Two hidden layers of `hidden` ReLU units."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(_length(input_shape), hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def cnn(input_shape: tuple[int, ...], num_classes: int, channels: int = 25) -> nn.Module:
    """Three stride-2 convolutions (kernels 5, 3, 3; padding 1; ReLU), then a linear layer on the
    flattened feature map (25 channels x 5 positions for a length-40 signal)."""
    in_channels, length = input_shape[0], _length(input_shape[1:])
    body = nn.Sequential(
        nn.Conv1d(in_channels, channels, 5, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
    )
    for kernel in (5, 3, 3):  # each convolution's output length: (L + 2 - k) // 2 + 1
        length = (length + 2 - kernel) // 2 + 1
    return nn.Sequential(body, nn.Linear(channels * length, num_classes))


class GRU(nn.Module):
    """A GRU reads the signal one value per time step (both directions); the outputs of every
    time step, flattened, feed a linear layer."""

    def __init__(
        self, length: int, num_classes: int, hidden: int = 6, bidirectional: bool = True
    ) -> None:
        super().__init__()
        self.rnn = nn.GRU(1, hidden, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(length * hidden * (2 if bidirectional else 1), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.reshape(len(x), -1, 1))  # (N, L, 1): one value per time step
        return self.head(out.flatten(1))


def gru(
    input_shape: tuple[int, ...], num_classes: int, hidden: int = 6, bidirectional: bool = True
) -> nn.Module:
    """The paper's GRU: 6 hidden units, bidirectional."""
    return GRU(_length(input_shape), num_classes, hidden, bidirectional)
