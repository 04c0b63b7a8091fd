"""From a source to train/val/test tensors: class subsets, splits, resizing and preprocessing.

The lecture's preprocessing slide: zero-centre and scale the inputs with statistics of the
training split only (per feature for vectors, per channel for signals and images), and use the
same numbers at evaluation time; they are stored with the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainlab.config import DataConfig, is_plugin
from trainlab.data.checks import count_classes, require_finite
from trainlab.data.images import stream_folder
from trainlab.data.normalize import Normalizer
from trainlab.data.plugins import load_plugin
from trainlab.data.sources import Source, infer_format, load_source
from trainlab.data.streaming import StreamedSplits, TensorSplit, split_indices
from trainlab.errors import UserError, excerpt


@dataclass
class Splits:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    kind: str  # vector | signal | image
    num_classes: int
    normalizer: Normalizer

    streamed = False  # in memory (StreamedSplits: read from Datasets batch by batch)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def train(self) -> TensorSplit:
        return TensorSplit(self.x_train, self.y_train)

    @property
    def val(self) -> TensorSplit:
        return TensorSplit(self.x_val, self.y_val)

    @property
    def test(self) -> TensorSplit:
        return TensorSplit(self.x_test, self.y_test)

    def fit_sample(self) -> torch.Tensor:
        """The normalized training examples augmenters fit on (all of them, in memory)."""
        return self.x_train

    @property
    def device(self) -> torch.device:
        return self.x_test.device

    def rarest_class_count(self) -> int:
        """Training examples of the rarest class present (what limits what can be learned)."""
        counts = torch.bincount(self.y_train.cpu())
        return int(counts[counts > 0].min()) if len(counts) else 0

    def renormalized(self, normalizer: Normalizer) -> Splits:
        """The same examples normalized with other statistics (a pretrained network's, or the
        ones saved with a run), so the inputs look like those the network was trained on."""
        old = self.normalizer

        def redo(x: torch.Tensor) -> torch.Tensor:
            return normalizer(x * old.std + old.mean)

        return Splits(
            redo(self.x_train),
            self.y_train,
            redo(self.x_val),
            self.y_val,
            redo(self.x_test),
            self.y_test,
            self.kind,
            self.num_classes,
            normalizer,
        )

    def normalized_as(self, normalizer: Normalizer) -> Splits:
        """These splits as a network trained with `normalizer` must see them: self when the
        statistics are the ones fitted here, else renormalized (on the splits' device)."""
        mine, dev = self.normalizer, self.x_test.device
        if torch.equal(normalizer.mean.to(dev), mine.mean) and torch.equal(
            normalizer.std.to(dev), mine.std
        ):
            return self
        return self.renormalized(Normalizer(normalizer.mean.to(dev), normalizer.std.to(dev)))

    def to(self, device: torch.device) -> Splits:
        for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            setattr(self, name, getattr(self, name).to(device))
        return self


def _select_classes(x: np.ndarray, y: np.ndarray, classes: list[int]) -> tuple[np.ndarray, ...]:
    keep = np.isin(y, classes)
    remap = {c: i for i, c in enumerate(classes)}
    return x[keep], np.array([remap[int(v)] for v in y[keep]], dtype=np.int64)


def _at_most_per_class(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    picks = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(picks))


def resize_images(x: torch.Tensor, size: list[int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)


AnySplits = Splits | StreamedSplits


def prepare(
    cfg: DataConfig, source: Source | StreamedSplits | None = None, search_dirs: tuple = ()
) -> AnySplits:
    """Load (or take) a source and build normalized train/val/test tensors, seeded by data.seed;
    a data plugin's Datasets and a large image folder give streamed splits instead."""
    if source is None and is_plugin(cfg.name):
        source = load_plugin(cfg, search_dirs)
    if source is None:
        source = stream_folder(cfg)
    if isinstance(source, StreamedSplits):
        return source
    src = source or load_source(cfg.name, cfg.path, cfg.seed, cfg.label_column, cfg.resize)
    rng = np.random.default_rng(cfg.seed)
    x, y, xt, yt, xv, yv = src.x, src.y, src.x_test, src.y_test, src.x_val, src.y_val
    require_finite(x, "x", src.origin)
    if xt is not None:
        require_finite(xt, "x_test", src.origin)
    if xv is not None:
        require_finite(xv, "x_val", src.origin)
    if cfg.classes is not None:
        present = set(np.unique(y).tolist())
        missing = [c for c in cfg.classes if c not in present]
        if missing or len(set(cfg.classes)) != len(cfg.classes):
            raise UserError(
                f"data.classes: {excerpt(missing or cfg.classes)} not among the labels "
                f"{excerpt(sorted(present))} (or repeated)"
            )
        x, y = _select_classes(x, y, cfg.classes)
        if xt is not None:
            xt, yt = _select_classes(xt, yt, cfg.classes)
        if xv is not None:
            xv, yv = _select_classes(xv, yv, cfg.classes)
    if xt is None:
        keep, held = split_indices(len(x), cfg.test_fraction, rng)
        x, y, xt, yt = x[keep], y[keep], x[held], y[held]
    if xv is None:
        keep, held = split_indices(len(x), cfg.val_fraction, rng)
        x, y, xv, yv = x[keep], y[keep], x[held], y[held]
    if cfg.per_class is not None:
        pick = _at_most_per_class(y, cfg.per_class, rng)
        x, y = x[pick], y[pick]
    if len(x) == 0:
        raise UserError("data: no training examples left after the splits and data.per_class")
    if len(xt) == 0:
        raise UserError(
            "data.test_fraction: no test example left; use more data or a larger fraction"
            if src.x_test is None
            else "data: the test split is empty (x_test has no examples of the classes kept)"
        )
    if len(xv) == 0:  # early stopping and the best epoch are chosen on it
        raise UserError(
            f"data.val_fraction: {cfg.val_fraction:g} of {len(x)} training examples leaves no "
            "validation example; use more data or a larger fraction"
        )
    field = "data.path" if src.origin else "data"
    num_classes = count_classes(y, [yv, yt], field, relabelled=cfg.classes is not None)
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in (x, xv, xt)]
    if cfg.resize is not None:
        if src.kind != "image":
            raise UserError(
                f"data.resize: only images can be resized, {cfg.name} holds {src.kind}s"
            )
        tensors = [resize_images(t, cfg.resize) for t in tensors]
    norm = Normalizer.fit(tensors[0], src.kind)
    x_train, x_val, x_test = (norm(t) for t in tensors)
    if not all(bool(torch.isfinite(t).all()) for t in (x_train, x_val, x_test, norm.std)):
        largest = max(float(t.abs().max()) for t in tensors)
        raise UserError(
            f"{field}: inputs up to {largest:.3g} overflow float32 when standardized; "
            "rescale them (divide by a constant) before training"
        )
    return Splits(
        x_train,
        torch.from_numpy(y),
        x_val,
        torch.from_numpy(yv),
        x_test,
        torch.from_numpy(yt),
        src.kind,
        num_classes,
        norm,
    )


def load_inputs_for(
    path: str, input_shape: tuple[int, ...], normalizer: Normalizer, resize: list[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """New data for a trained run (eval --data-path): same input shape, the run's normalization.

    The file's test arrays are used when it has them, else all its examples.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"--data-path: not found: {p}")
    src = load_source(infer_format(p), str(p), 0, -1, resize)
    name = "x_test" if src.x_test is not None else "x"
    x, y = (src.x_test, src.y_test) if src.x_test is not None else (src.x, src.y)
    if len(x) == 0:
        raise UserError(f"--data-path: {p} holds no examples")
    require_finite(x, name, str(p), "--data-path")
    if len(input_shape) == 2:  # a signal run takes (N, C, L); accept (N, L) and (N, 1, 1, L)
        x = x.reshape(len(x), input_shape[0], -1) if x.size == len(x) * np.prod(input_shape) else x
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if resize is not None and xt.dim() == 4:
        xt = resize_images(xt, resize)
    if tuple(xt.shape[1:]) != tuple(input_shape):
        raise UserError(
            f"--data-path: examples have shape {tuple(xt.shape[1:])}, the run's model "
            f"takes {tuple(input_shape)}"
        )
    return normalizer(xt), torch.from_numpy(y)
