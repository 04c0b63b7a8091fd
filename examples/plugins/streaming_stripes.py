"""A streaming data plugin: images generated on the fly, one per index, from a seed.

Nothing is stored, so the data set can be far larger than memory (the default is 2 GiB of
float32 per epoch): trainlab reads it through a DataLoader batch by batch and never holds it
whole. Class k is noise with a slightly brighter band of rows k; a small MLP learns it.

    trainlab train examples/plugins/streaming_stripes.yaml
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class NoisyStripes(Dataset):
    """`n` examples of shape (1, size, size): Gaussian noise plus `shift` on class y's band."""

    def __init__(self, n: int, size: int, classes: int, shift: float, seed: int) -> None:
        self.n, self.size, self.shift, self.seed = n, size, shift, seed
        self.num_classes = classes  # tells trainlab the label range without reading it all

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        gen = torch.Generator().manual_seed(self.seed * 2_654_435_761 + i)
        y = i % self.num_classes
        x = torch.randn(1, self.size, self.size, generator=gen)
        band = self.size // self.num_classes
        x[0, y * band : (y + 1) * band] += self.shift
        return x, y


def stripes(
    train: int = 32_768,
    val: int = 1_024,
    test: int = 2_048,
    size: int = 128,
    classes: int = 4,
    shift: float = 0.05,
    seed: int = 0,
) -> dict[str, Dataset]:
    """Train/val/test Datasets of NoisyStripes (different seeds, so no example repeats)."""
    return {
        name: NoisyStripes(n, size, classes, shift, seed * 3 + k)
        for k, (name, n) in enumerate((("train", train), ("val", val), ("test", test)))
    }
