"""The user's own data: `data.name: "package.module:function"` is called as
`function(**data.args)`, or `trainlab.train(config, data=...)` hands the object over directly.

Accepted: `(x, y)` arrays or tensors (split and normalized as files are), or a mapping with
`train` and optional `val` and `test`, each `(x, y)` or a `torch.utils.data.Dataset` of (x, y)
pairs (or a bare Dataset, standing for `train`). With any Dataset the splits stream (never
materialized); with arrays only they are tensors in memory. One example's dimensions give the
kind of input: (D,) vectors, (C, L) signals, (C, H, W) images.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from trainlab.config import DataConfig
from trainlab.data.sources import MAX_CLASSES, Source
from trainlab.data.streaming import KINDS, StreamedSplits, stream_splits
from trainlab.errors import UserError
from trainlab.plugins import UNIMPORTABLE, default_dtype_kept, first_line, load_object

SPLITS = ("train", "val", "test")


def import_dirs_of(obj: Any) -> tuple[str, ...]:
    """The folder a plugin's top-level package sits in: spawned loader workers need it on
    sys.path to import the Dataset's class."""
    name = getattr(obj, "__module__", None) or ""
    file = getattr(sys.modules.get(name), "__file__", None)
    if not file:
        return ()
    root = Path(file).resolve().parent
    for _ in range(name.count(".")):
        root = root.parent
    return (str(root),)


def call_data_function(fn: Callable[..., Any], args: Mapping[str, Any], name: str) -> Any:
    """`fn(**args)`; anything it raises is one line naming data.name."""
    if not callable(fn):
        raise UserError(f"data.name: {name} is a {type(fn).__name__}, not a function")
    try:
        return fn(**args)
    except UserError:
        raise
    except Exception as err:
        raise UserError(f"data.name: {name}(**data.args) raised {first_line(err)}") from None


def load_plugin(cfg: DataConfig, search_dirs: Iterable[str | Path] = ()) -> Source | StreamedSplits:
    """Import and call the function data.name names; its data as a Source or streamed splits."""
    module = cfg.name.partition(":")[0]
    if module == UNIMPORTABLE:
        raise UserError(
            "data.name: this run was trained on data passed as a Python object, which cannot "
            "be rebuilt from the run directory; pass it again (trainlab.train(..., data=...)) "
            "or evaluate on a file with --data-path"
        )
    with default_dtype_kept("data.name", cfg.name):
        fn = load_object(cfg.name, "data.name", search_dirs)
        out = call_data_function(fn, cfg.args, cfg.name)
    return from_object(out, cfg, import_dirs_of(fn))


# ----------------------------------------------------------------------------- the return value
def _arrays(obj: Any, what: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(x, y) as numpy arrays when `obj` is a pair of arrays or tensors, else None."""
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        return None
    x, y = (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v for v in obj)
    if not isinstance(x, np.ndarray) or not isinstance(y, (np.ndarray, list)):
        return None
    if x.dtype == object or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise UserError(f"{what}: x must be an array of real numbers, got dtype {x.dtype}")
    if x.ndim - 1 not in KINDS:
        raise UserError(
            f"{what}: x must have shape (N, D), (N, C, L) or (N, C, H, W), got {x.shape}"
        )
    y = np.asarray(y).reshape(-1) if np.ndim(y) <= 1 else np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise UserError(f"{what}: y must hold one label per example ({len(x)}), got {y.shape}")
    if len(y) and not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{what}: labels must be integers 0..K-1, got dtype {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= MAX_CLASSES):
        bad = y.min() if y.min() < 0 else y.max()
        raise UserError(f"{what}: labels must be class indices 0..K-1, found {bad}")
    return x.astype(np.float32), y.astype(np.int64)


def _parts(obj: Any) -> dict[str, Any]:
    """{train, val, test} from what the user gave; a mistake names what is allowed."""
    allowed = (
        "(x, y) arrays or tensors, a torch Dataset of (x, y) pairs, or a mapping with 'train' "
        "and optional 'val' and 'test'"
    )
    if isinstance(obj, Mapping):
        unknown = [k for k in obj if k not in SPLITS]
        if "train" not in obj or unknown:
            raise UserError(
                f"data.name: the mapping must have a 'train' key and may have 'val' and 'test'; "
                f"got keys {sorted(map(str, obj))}"
            )
        return {k: obj.get(k) for k in SPLITS}
    if isinstance(obj, Dataset) or (isinstance(obj, (tuple, list)) and len(obj) == 2):
        return {"train": obj, "val": None, "test": None}
    raise UserError(f"data.name: the data must be {allowed}; got {type(obj).__name__}")


def from_object(
    obj: Any, cfg: DataConfig, import_dirs: tuple[str, ...] = ()
) -> Source | StreamedSplits:
    """The user's data object as a Source (arrays only: split and normalized by prepare) or as
    streamed splits (any Dataset; arrays beside one are read as a TensorDataset)."""
    parts = _parts(obj)
    arrays: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for name, part in parts.items():
        if part is None or isinstance(part, Dataset):
            continue
        found = _arrays(part, f"data.name: {name}")
        if found is None:
            raise UserError(
                f"data.name: {name} must be (x, y) arrays or tensors or a torch Dataset of "
                f"(x, y) pairs; got {type(part).__name__}"
            )
        arrays[name] = found
    if not any(isinstance(p, Dataset) for p in parts.values()):
        (x, y), val, test = arrays["train"], arrays.get("val"), arrays.get("test")
        shapes = {a[0].shape[1:] for a in arrays.values() if a is not None}
        if len(shapes) > 1:
            raise UserError(f"data.name: the splits' examples differ in shape: {sorted(shapes)}")
        return Source(
            x,
            y,
            KINDS[x.ndim - 1],
            x_test=test[0] if test else None,
            y_test=test[1] if test else None,
            x_val=val[0] if val else None,
            y_val=val[1] if val else None,
        )
    datasets = {
        name: TensorDataset(torch.from_numpy(arrays[name][0]), torch.from_numpy(arrays[name][1]))
        if name in arrays
        else part
        for name, part in parts.items()
        if part is not None
    }
    return stream_splits(
        datasets["train"], datasets.get("val"), datasets.get("test"), cfg, import_dirs
    )
