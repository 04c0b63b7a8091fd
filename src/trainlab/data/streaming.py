"""Splits as the engine reads them: `batches(batch_size, generator)` yields (x, y) on the device.

A TensorSplit holds its (normalized) examples in memory and indexes one tensor: the fast path. A
StreamSplit reads a torch Dataset through a DataLoader batch by batch, so a data set larger than
memory trains: every example is checked as it is read (a pair, numeric x of one shape, an int
label below num_classes) and normalized on the device with statistics of a bounded sample.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import pickle
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from trainlab.config import DataConfig
from trainlab.data.checks import count_classes, require_finite
from trainlab.data.normalize import Normalizer, RunningMoments
from trainlab.data.sources import MAX_CLASSES
from trainlab.errors import UserError, excerpt
from trainlab.plugins import first_line

KINDS = {1: "vector", 2: "signal", 3: "image"}  # dimensions of one example -> kind of input
SPLIT_NAMES = ("train", "val", "test")
STATS_BATCH = 256  # examples per read while drawing the statistics sample
FIT_EXAMPLES = 1024  # of the sample kept in memory: augmenters that need fitting fit on them
BATCH_BYTES = 64 << 20  # a streamed read that is not a training batch stays under this


def bounded_batch(batch_size: int, shape: tuple[int, ...] | None) -> int:
    """`batch_size`, made smaller where that many float32 examples of `shape` would take more
    than BATCH_BYTES (evaluation and statistics reads of large examples)."""
    if not shape:
        return batch_size
    return max(1, min(batch_size, BATCH_BYTES // (4 * math.prod(shape))))


def split_indices(
    n: int, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split: (indices kept, indices held out), the held-out part `fraction`."""
    order = rng.permutation(n)
    held = int(round(n * fraction))
    return np.sort(order[held:]), np.sort(order[:held])


def batch_count(n: int, batch_size: int, min_size: int = 1) -> int:
    """How many batches `batches()` yields: a last batch smaller than `min_size` is dropped."""
    return len(range(0, max(n - min_size + 1, 0), batch_size))


class TensorSplit:
    """A split in memory: x already normalized, on the device; batches index it."""

    streamed = False

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None, min_size: int = 1
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled with `generator` (one randperm), else in order; see batch_count."""
        n = len(self.y)
        order = None
        if generator is not None:
            order = torch.randperm(n, generator=generator).to(self.x.device)
        for i in range(0, n, batch_size):
            if n - i < min_size:
                return
            idx = order[i : i + batch_size] if order is not None else slice(i, i + batch_size)
            yield self.x[idx], self.y[idx]


# ------------------------------------------------------------------------- checking examples
def as_example(item: Any, where: str, shape: tuple[int, ...] | None) -> tuple[torch.Tensor, int]:
    """One Dataset item as (float32 tensor, int label), or a UserError naming what is wrong."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise UserError(f"{where}: must be an (x, y) pair, got {type(item).__name__}")
    x, y = item
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise UserError(f"{where}: x must hold real numbers, got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise UserError(f"{where}: x must be a tensor or numpy array, got {type(x).__name__}")
    if x.is_complex() or x.dtype == torch.bool or x.dim() not in KINDS:
        raise UserError(
            f"{where}: x must be a real tensor of shape (D,), (C, L) or (C, H, W), got "
            f"{x.dtype} {tuple(x.shape)}"
        )
    if shape is not None and tuple(x.shape) != shape:
        raise UserError(
            f"{where}: x has shape {tuple(x.shape)}, the first example had {shape}; every "
            "example must have the same shape"
        )
    if isinstance(y, torch.Tensor) and y.numel() == 1 and not y.is_floating_point():
        y = y.item()
    if isinstance(y, np.integer):
        y = int(y)
    if isinstance(y, bool) or not isinstance(y, int):
        raise UserError(f"{where}: the label must be an int class index, got {y!r:.40}")
    if not 0 <= y < MAX_CLASSES:
        raise UserError(f"{where}: labels are class indices 0..K-1 (K <= {MAX_CLASSES}), got {y}")
    return x.float(), y


class CheckedDataset(Dataset):
    """The user's Dataset read one item at a time, each item checked (as_example). A mistake is
    returned as its message instead of raised, so that it leaves a worker process as one line."""

    def __init__(self, dataset: Dataset, what: str, shape: tuple[int, ...] | None) -> None:
        self.dataset, self.what, self.shape = dataset, what, shape

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | str:
        ds, index = self.dataset, i
        while isinstance(ds, Subset):  # name the index in the user's own Dataset
            ds, index = ds.dataset, ds.indices[index]
        where = f"{self.what} example {index}"
        try:
            return as_example(self.dataset[i], where, self.shape)
        except UserError as err:
            return str(err)
        except Exception as err:  # the user's __getitem__ raised: one line, not a traceback
            return f"{where}: reading it raised {first_line(err)}"


def collate(items: list[tuple[torch.Tensor, int] | str]) -> tuple[torch.Tensor, torch.Tensor] | str:
    """Stack checked examples into one batch; the first mistake's message passes through."""
    bad = next((it for it in items if isinstance(it, str)), None)
    if bad is not None:
        return bad
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # a loader worker decodes examples; the trainer owns the cores


@contextlib.contextmanager
def _on_path(dirs: Sequence[str]) -> Iterator[None]:
    """Spawned workers import the Dataset's module: they inherit sys.path at their start."""
    added = [d for d in dirs if d not in sys.path]
    sys.path.extend(added)
    try:
        yield
    finally:
        for d in added:
            sys.path.remove(d)


class _Order(Sampler):
    """The indices a kept DataLoader reads this pass (set before each pass)."""

    def __init__(self) -> None:
        self.indices: Sequence[int] = ()

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class StreamSplit:
    """A split read from a Dataset through a DataLoader (data.loader: workers, prefetch), batch
    by batch, never materialized. `normalizer` None and `num_classes` None read raw examples."""

    dataset: Dataset
    what: str  # "data.name: train Dataset", named in messages
    shape: tuple[int, ...] | None
    workers: int = 0
    prefetch: int = 2
    normalizer: Normalizer | None = None
    num_classes: int | None = None
    import_dirs: tuple[str, ...] = ()
    device: torch.device = torch.device("cpu")
    _loaders: dict = field(default_factory=dict, repr=False, compare=False)

    streamed = True

    def __len__(self) -> int:
        return len(self.dataset)

    def _loader(self, batch_size: int) -> tuple[DataLoader, _Order]:
        """One DataLoader per batch size, kept: its worker processes (spawned, one thread each)
        persist across epochs, and only the order it reads changes."""
        key = (batch_size, self.device.type)
        # a search worker is a daemon process, which may not start processes: it reads in
        # process (the same batches: the order does not depend on the workers)
        workers = 0 if multiprocessing.current_process().daemon else self.workers
        if key not in self._loaders:
            order = _Order()
            loader = DataLoader(
                CheckedDataset(self.dataset, self.what, self.shape),
                batch_size=batch_size,
                sampler=order,
                num_workers=workers,
                prefetch_factor=self.prefetch if workers else None,
                persistent_workers=workers > 0,
                collate_fn=collate,
                multiprocessing_context="spawn" if workers else None,
                worker_init_fn=_one_thread if workers else None,
                generator=torch.Generator().manual_seed(0),  # never the global RNG
                pin_memory=self.device.type == "cuda",
            )
            self._loaders[key] = (loader, order)
        return self._loaders[key]

    def close(self) -> None:
        """Stop the kept loaders' worker processes now (after a mistake in the data, rather
        than at interpreter exit)."""
        for loader, _ in self._loaders.values():
            running = getattr(loader, "_iterator", None)
            if running is not None and hasattr(running, "_shutdown_workers"):
                running._shutdown_workers()
        self._loaders.clear()

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None, min_size: int = 1
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled with `generator` (the epoch's: one randperm, as a tensor split draws),
        else in order; the order is the same with any number of workers, and on resume."""
        n = len(self.dataset)
        loader, order = self._loader(batch_size)
        order.indices = (
            range(n) if generator is None else torch.randperm(n, generator=generator).tolist()
        )
        norm = self.normalizer
        if norm is not None:
            norm = Normalizer(norm.mean.to(self.device), norm.std.to(self.device))
        try:
            with _on_path(self.import_dirs), warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Got pickle error")  # said below, in one line
                batches = iter(loader)  # starts the worker processes on the first pass
        except (pickle.PicklingError, AttributeError, TypeError) as err:
            if "pickle" not in str(err):
                raise
            self.close()
            raise UserError(
                f"data.loader.workers: the {self.what.split(': ')[-1]} cannot be sent to "
                f"worker processes ({first_line(err)}); make it picklable or set workers: 0"
            ) from None
        for i, batch in enumerate(batches):
            if isinstance(batch, str):
                self.close()
                raise UserError(batch)
            if n - i * batch_size < min_size:
                return
            x, y = (t.to(self.device, non_blocking=True) for t in batch)
            if self.num_classes is not None and len(y) and int(y.max()) >= self.num_classes:
                self.close()
                raise UserError(
                    f"{self.what}: label {int(y.max())} in batch {i}, but the data has "
                    f"{self.num_classes} classes (labels seen in the statistics sample, or the "
                    "Dataset's num_classes attribute); give the training Dataset a num_classes "
                    "attribute"
                )
            yield (norm(x) if norm is not None else x), y


Split = TensorSplit | StreamSplit


@dataclass
class StreamedSplits:
    """Train/val/test read from Datasets: the shape of `Splits` the engine uses (train, val,
    test, kind, num_classes, normalizer, input_shape), without the examples in memory."""

    train: StreamSplit
    val: StreamSplit
    test: StreamSplit
    kind: str
    num_classes: int
    normalizer: Normalizer
    sample: torch.Tensor  # raw examples of the statistics sample (CPU): augmenters fit on them
    sample_labels: torch.Tensor  # the labels of the whole statistics sample

    streamed = True

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.sample.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.train.device

    def fit_sample(self) -> torch.Tensor:
        """Normalized training examples to fit augmenters on (the statistics sample)."""
        return self.normalizer(self.sample).to(self.train.device)

    def rarest_class_count(self) -> int:
        """Training examples of the rarest class present, estimated from the sample (reading
        every label of a streamed split would decode all of it)."""
        counts = torch.bincount(self.sample_labels)
        scale = len(self.train) / max(len(self.sample_labels), 1)
        return int(round(float(counts[counts > 0].min()) * scale)) if len(counts) else 0

    def renormalized(self, normalizer: Normalizer) -> StreamedSplits:
        """The same Datasets read with other statistics (a pretrained network's, a run's)."""
        splits = {k: replace(getattr(self, k), normalizer=normalizer) for k in SPLIT_NAMES}
        return replace(self, normalizer=normalizer, **splits)

    def normalized_as(self, normalizer: Normalizer) -> StreamedSplits:
        same = torch.equal(normalizer.mean.cpu(), self.normalizer.mean.cpu()) and torch.equal(
            normalizer.std.cpu(), self.normalizer.std.cpu()
        )
        if same:
            return self
        return self.renormalized(Normalizer(normalizer.mean.cpu(), normalizer.std.cpu()))

    def to(self, device: torch.device) -> StreamedSplits:
        for split in (self.train, self.val, self.test):
            split.device = torch.device(device)
        return self


# ------------------------------------------------------------------------------ building them
def _held_out(
    ds: Dataset, fraction: float, rng: np.random.Generator, field: str
) -> tuple[Dataset, Dataset]:
    keep, held = split_indices(len(ds), fraction, rng)
    if len(held) == 0 or len(keep) == 0:
        raise UserError(
            f"{field}: {fraction:g} of {len(ds)} examples leaves an empty split; use more data "
            "or another fraction"
        )
    return Subset(ds, keep.tolist()), Subset(ds, held.tolist())


def stream_splits(
    train: Dataset,
    val: Dataset | None,
    test: Dataset | None,
    cfg: DataConfig,
    import_dirs: Sequence[str] = (),
    what: str = "data.name",
) -> StreamedSplits:
    """Streamed splits from Datasets: a missing test, then val, split is a seeded index split of
    train (data.seed, test_fraction, val_fraction); input shape and kind from the first example;
    mean/std and the classes from a seeded sample of data.loader.stats_examples examples."""
    for name in ("classes", "per_class", "resize"):
        if getattr(cfg, name) is not None:
            raise UserError(f"data.{name}: not available for a streamed Dataset; unset it")
    if len(train) == 0:
        raise UserError(f"{what}: the train Dataset is empty")
    declared = getattr(train, "num_classes", None)
    rng = np.random.default_rng(cfg.seed)
    if test is None:
        train, test = _held_out(train, cfg.test_fraction, rng, "data.test_fraction")
    if val is None:
        train, val = _held_out(train, cfg.val_fraction, rng, "data.val_fraction")
    for name, ds in (("val", val), ("test", test)):
        if len(ds) == 0:
            raise UserError(f"{what}: the {name} Dataset is empty")
    loader = cfg.loader
    first = CheckedDataset(train, f"{what}: train Dataset", None)[0]
    if isinstance(first, str):
        raise UserError(first)
    shape = tuple(first[0].shape)

    def split(ds: Dataset, name: str) -> StreamSplit:
        return StreamSplit(
            ds,
            f"{what}: {name} Dataset",
            shape,
            loader.workers,
            loader.prefetch,
            import_dirs=tuple(import_dirs),
        )

    picked = np.random.default_rng([cfg.seed, 1]).choice(
        len(train), size=min(loader.stats_examples, len(train)), replace=False
    )
    sample_split = split(Subset(train, np.sort(picked).tolist()), "train")
    kind = KINDS[len(shape)]
    moments, labels, kept = RunningMoments(kind), [], []
    for x, y in sample_split.batches(bounded_batch(STATS_BATCH, shape)):
        require_finite(x.numpy(), "the statistics sample", f"the train Dataset of {what}", what)
        moments.update(x)
        labels.append(y)
        if sum(len(k) for k in kept) < FIT_EXAMPLES:
            kept.append(x[: FIT_EXAMPLES - sum(len(k) for k in kept)])
    sample_split.close()
    y = torch.cat(labels).numpy()
    if declared is not None:
        whole = isinstance(declared, (int, np.integer)) and not isinstance(declared, bool)
        if not whole or not 2 <= declared <= MAX_CLASSES:
            raise UserError(
                f"{what}: the train Dataset's num_classes must be an int in 2..{MAX_CLASSES}, "
                f"got {excerpt(declared)}"
            )
        num_classes = int(declared)
        if int(y.max()) >= num_classes:
            raise UserError(
                f"{what}: train Dataset label {int(y.max())} is not below its num_classes "
                f"{num_classes}"
            )
    else:
        num_classes = count_classes(y, [], what, relabelled=False)
    norm = moments.normalizer()
    out = {}
    for name, ds in (("train", train), ("val", val), ("test", test)):
        s = split(ds, name)
        s.normalizer, s.num_classes = norm, num_classes
        out[name] = s
    sample = torch.cat(kept)
    return StreamedSplits(
        out["train"], out["val"], out["test"], kind, num_classes, norm, sample, torch.from_numpy(y)
    )
