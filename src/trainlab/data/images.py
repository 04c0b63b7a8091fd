"""Image folders too large for memory, streamed: each batch decodes its files.

The rule (no wall-clock timing in it, so a run is the same on any machine): a folder whose
decoded float32 images would take more than STREAM_BYTES is streamed; a smaller one is loaded
into memory once (faster per epoch). The size is the count of image files times the decoded size
of the first (after data.resize).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from trainlab.config import DataConfig
from trainlab.data.sources import UNREADABLE, image_files, infer_format, read_image
from trainlab.data.streaming import StreamedSplits, stream_splits
from trainlab.errors import UserError, excerpt

STREAM_BYTES = 1 << 30  # 1 GiB of decoded images: above it a folder streams


class ImageFiles(Dataset):
    """(C, H, W) float32 images decoded from their files on each read, with their labels."""

    def __init__(self, files: list[Path], labels: list[int], resize: list[int] | None) -> None:
        self.files, self.labels, self.resize = files, labels, resize
        self.num_classes = max(labels) + 1

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            image = read_image(self.files[i], self.resize)
        except UNREADABLE as err:
            raise UserError(
                f"data.path: cannot read image {self.files[i]} ({type(err).__name__}); "
                "remove it from the folder"
            ) from None
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), self.labels[i]


def _decoded_bytes(files: list[Path], resize: list[int] | None) -> int:
    """Bytes of the first readable image decoded as float32 (a folder's unreadable files are
    skipped here as the in-memory loader skips them)."""
    for file in files:
        try:
            return read_image(file, resize).size * 4
        except UNREADABLE:
            continue
    raise UserError(f"data.path: no readable image among the {len(files)} files")


def stream_folder(cfg: DataConfig) -> StreamedSplits | None:
    """Streamed splits of an image folder above STREAM_BYTES; None for everything else."""
    if cfg.name not in ("image_folder", "file") or not cfg.path:
        return None
    path = Path(cfg.path).expanduser()
    if not path.is_dir() or infer_format(path) != "image_folder":
        return None
    files, labels = image_files(path)
    if len(files) * _decoded_bytes(files, cfg.resize) <= STREAM_BYTES:
        return None  # loaded in memory by sources.image_folder (which skips unreadable files)
    if cfg.classes is not None:  # keep these class folders, relabelled 0..k-1
        missing = [c for c in cfg.classes if c not in set(labels)]
        if missing or len(set(cfg.classes)) != len(cfg.classes):
            raise UserError(
                f"data.classes: {excerpt(missing or cfg.classes)} not among the labels "
                f"0..{max(labels)} of the class folders (or repeated)"
            )
        remap = {c: i for i, c in enumerate(cfg.classes)}
        kept = [(f, remap[y]) for f, y in zip(files, labels) if y in remap]
        files, labels = [f for f, _ in kept], [y for _, y in kept]
    if len(set(labels)) < 2:
        raise UserError(f"data.path: {path} holds one class; a classifier needs two or more")
    images = ImageFiles(files, labels, cfg.resize)
    # resize and classes are applied here, while listing and decoding
    cfg = cfg.model_copy(update={"resize": None, "classes": None})
    return stream_splits(images, None, None, cfg, what="data.path")
