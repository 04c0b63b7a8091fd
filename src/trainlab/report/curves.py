"""curves.png: the pictures the lecture reads a run by: loss, train vs val accuracy, lr.

Drawn with trainlab.report.raster (Pillow), not matplotlib: every run writes this picture, and it
was the largest fixed cost of a short run (issue 30). 1650 pixels wide, as before.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from trainlab.report.raster import Axis, Canvas, Panel
from trainlab.smoothing import smooth

WIDTH, HEIGHT = 1650, 462  # pixels (the old 15 x 4.2 inch figure at 110 dpi)
ADVICE_LINE = 16  # pixels per line of advice under the panels
ADVICE_CHARS = 200  # characters per line of advice before it wraps


def smoothing_for(n_steps: int) -> float:
    """A moving-average memory of about 2% of the run (1 / (1 - beta) steps, at most ~50).

    Short runs get little or no smoothing: a full-batch run (one step per epoch) has no
    minibatch noise to average, and a 5-step memory made its smoothed curve lag the real one."""
    return min(0.98, max(0.0, 1.0 - 50.0 / max(n_steps, 1)))


def _finite(values: list[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def plot_curves(
    metrics: list[dict[str, Any]],
    step_losses: list[float],
    path: Path,
    advice: list[dict[str, str]] = (),
    title: str = "",
) -> None:
    """Three panels: loss per step (raw and smoothed) with val loss per epoch; train and val
    accuracy per epoch (the gap is overfitting); the learning rate, with the update/weight
    ratio on a second axis. The advice is written under them, the title above."""
    lines = [
        line
        for a in advice
        for line in textwrap.wrap(f"[{a['code']}] {a['message']}", ADVICE_CHARS) or [""]
    ]
    canvas = Canvas(WIDTH, HEIGHT + ADVICE_LINE * len(lines))
    top, bottom = (76 if title else 44), HEIGHT - 64
    width, gap, left = 412, 124, 80
    boxes = [
        (left + i * (width + gap), top, left + i * (width + gap) + width, bottom) for i in (0, 1, 2)
    ]
    epochs = [m["epoch"] for m in metrics]

    # loss: every step, faint, its moving average, and the validation loss after each epoch
    step_losses = [math.nan if v is None else float(v) for v in step_losses]
    steps = list(range(1, len(step_losses) + 1))
    finite = _finite(step_losses)
    smoothed = smooth(step_losses, smoothing_for(len(step_losses))) if finite else []
    val_loss = [m.get("val_loss") for m in metrics]
    steps_at = [m["step"] for m in metrics]
    log = bool(finite) and max(finite) / max(min(finite), 1e-8) > 50
    loss = Panel(
        canvas,
        boxes[0],
        Axis(steps + steps_at, integer=True),
        Axis(finite + _finite(smoothed) + _finite(val_loss), log=log),
    )
    if finite:
        loss.line(steps, step_losses, "blue", width=0.8, alpha=0.25, label="train loss (step)")
        loss.line(steps, smoothed, "blue", width=1.6, label="train loss (smoothed)")
    if _finite(val_loss):
        loss.line(steps_at, val_loss, "orange", marker="o", label="val loss (epoch)")
    loss.frame(title="loss", xlabel="step", ylabel="cross-entropy")
    loss.legend()

    # accuracy: train vs validation per epoch; the gap is overfitting
    def percent(key: str) -> list[float | None]:
        return [None if m.get(key) is None else 100 * m[key] for m in metrics]

    train_acc, val_acc = percent("train_accuracy"), percent("val_accuracy")
    acc = Panel(canvas, boxes[1], Axis(epochs, integer=True), Axis(_finite(train_acc + val_acc)))
    acc.grid()
    acc.line(epochs, train_acc, "blue", marker="o", label="train")
    acc.line(epochs, val_acc, "orange", marker="o", label="validation")
    if metrics:
        best = max(metrics, key=lambda m: m.get("val_accuracy") or -1)
        acc.vline(best["epoch"], "grey", label="best epoch")
    acc.frame(
        title="train vs validation (a growing gap = overfitting)",
        xlabel="epoch",
        ylabel="accuracy (%)",
    )
    acc.legend()

    # learning rate, and the update/weight ratio (the lecture's ~1e-3) on the right
    lr = [m.get("lr") for m in metrics]
    ratio = [m.get("update_ratio") for m in metrics]
    panel = Panel(canvas, boxes[2], Axis(epochs, integer=True), Axis(_finite(lr), log=True))
    panel.line(epochs, lr, "green", marker="o")
    y2label = ""
    if any(ratio):
        panel.right_axis(Axis(_finite(ratio) + [1e-3], log=True))
        panel.line(epochs, ratio, "purple", style="--", marker="s", right=True)
        panel.hline(1e-3, "purple", right=True)
        y2label = "update / weight (target ~1e-3)"
    panel.frame(
        title="learning rate",
        xlabel="epoch",
        ylabel="learning rate (end of epoch)",
        y2label=y2label,
        y2color="purple",
    )

    for i, line in enumerate(lines):
        canvas.text((10, HEIGHT - 8 + ADVICE_LINE * i), line, size=12, color="darkred", anchor="ls")
    if title:
        canvas.text((WIDTH / 2, 22), title, size=16, anchor="mm")
    canvas.save(path)
