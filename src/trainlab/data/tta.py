"""Test-time augmentation: average the model's predicted probabilities over several views.

Modes (`train.tta`): none; flip (the input and its mirror image: left-right for images, the time
axis reversed for signals, so ask for it only where mirroring keeps the label); ten_crop (images:
the 4 corner crops and the centre crop, and their mirror images, AlexNet's test-time averaging).
ten_crop feeds crops of the training crop size to the model, so the model must accept that size:
the CNN and ResNet end with global average pooling, so any size their convolutions accept works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainlab import names
from trainlab.errors import UserError

__all__ = ["TTA_MODES", "ten_crop", "tta_predict"]

TTA_MODES: tuple[str, ...] = names.TTA_MODES


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def ten_crop(x: Tensor, size: int | Sequence[int], pad: int = 0) -> Tensor:
    """The 10 views of each image of x (N, C, H, W), stacked view-major: (10 N, C, h, w).

    Views in order: top-left, top-right, bottom-left, bottom-right, centre, then the same five
    mirrored left-right; rows [k N, (k+1) N) hold view k of every image. With `pad`, the image is
    first zero-padded by pad pixels (the test-time twin of a `crop` with padding).
    """
    if x.ndim != 4:
        raise UserError(
            f"train.tta: ten_crop needs images (N, C, H, W), got shape {tuple(x.shape)}"
        )
    h, w = _hw(size)
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
    H, W = x.shape[-2:]
    if h > H or w > W or h < 1 or w < 1:
        raise UserError(f"train.tta: crop {h}x{w} does not fit the image {H}x{W} (padded by {pad})")
    top, left = int(round((H - h) / 2)), int(round((W - w) / 2))
    five = [
        x[..., :h, :w],
        x[..., :h, W - w :],
        x[..., H - h :, :w],
        x[..., H - h :, W - w :],
        x[..., top : top + h, left : left + w],
    ]
    return torch.cat(five + [v.flip(-1) for v in five])


def _device(model: nn.Module, fallback: torch.device) -> torch.device:
    for t in model.parameters():
        return t.device
    return fallback


@torch.no_grad()
def tta_predict(
    model: nn.Module,
    x: Tensor,
    mode: str = "none",
    crop_size: int | Sequence[int] | None = None,
    batch_size: int = 512,
    pad: int = 0,
) -> Tensor:
    """Class probabilities (N, K) of `model` on x, softmax averaged over the views of `mode`.

    The model runs in eval mode (its previous mode is restored) on its own device, at most
    `batch_size` views per forward pass; the result is float32 on x's device. ten_crop needs the
    training crop size `crop_size` (and `pad` to mirror a padded crop); crop_size None means the
    image size, which needs pad > 0 to give distinct views.
    """
    if mode not in TTA_MODES:
        raise UserError(f"train.tta: must be one of {', '.join(TTA_MODES)}, got {mode!r}")
    if batch_size < 1:
        raise ValueError(f"tta_predict: batch_size must be >= 1, got {batch_size}")
    if mode == "ten_crop":
        if x.ndim != 4:
            raise UserError(
                "train.tta: ten_crop applies to images (N, C, H, W); use none or flip "
                f"for this data (shape {tuple(x.shape)})"
            )
        if crop_size is None and not pad:
            raise UserError(
                "train.tta: ten_crop needs a training crop smaller than the image "
                "(data.augment crop with size or pad); use flip otherwise"
            )
        size = _hw(crop_size) if crop_size is not None else tuple(x.shape[-2:])
    views = {"none": 1, "flip": 2, "ten_crop": 10}[mode]
    step = max(1, batch_size // views)
    device = _device(model, x.device)
    was_training = model.training
    model.eval()
    try:
        out = []
        for chunk in x.split(step):
            chunk = chunk.to(device)
            n = chunk.shape[0]
            if mode == "none":
                batch = chunk
            elif mode == "flip":
                batch = torch.cat([chunk, chunk.flip(-1)])
            else:
                batch = ten_crop(chunk, size, pad)
            probs = model(batch).float().softmax(-1)
            out.append(probs.view(views, n, -1).mean(0).to(x.device))
    finally:
        model.train(was_training)
    if not out:
        raise ValueError("tta_predict: x is empty")
    return torch.cat(out)
