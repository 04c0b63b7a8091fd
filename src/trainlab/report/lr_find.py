"""The learning-rate range test's record (LRFindResult) and its picture: loss against lr (log axis),
raw and smoothed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path


@dataclass
class LRFindResult:
    """The range test's curve: one lr, raw loss and smoothed loss per step, and the suggestion."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggested_lr: float | None
    stopped_early: bool


def plot_lr_find(result: LRFindResult, path: str | Path) -> None:
    """Save loss vs learning rate (log axis), raw and smoothed, with the suggested lr marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 4.0), dpi=120)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    ax.plot(result.lrs, result.losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="loss")
    ax.plot(result.lrs, result.smoothed, color="tab:blue", linewidth=1.8, label="smoothed loss")
    if result.suggested_lr is not None:
        ax.axvline(result.suggested_lr, color="tab:red", linestyle="--", linewidth=1)
        k = min(range(len(result.lrs)), key=lambda i: abs(result.lrs[i] - result.suggested_lr))
        ax.plot(
            [result.lrs[k]],
            [result.smoothed[k]],
            "o",
            color="tab:red",
            label=f"suggested lr {result.suggested_lr:.2g}",
        )
    ax.set_xscale("log")
    smoothed = [v for v in result.smoothed if math.isfinite(v)]
    raw = [v for v in result.losses if math.isfinite(v)]
    if smoothed:  # keep the explosion at the end from squashing the interesting part
        low = min(smoothed + raw)
        high = max(smoothed[: max(1, len(smoothed) * 9 // 10)])
        pad = high - low + 1e-12
        ax.set_ylim(low - 0.05 * pad, high + 0.25 * pad)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    figure.tight_layout()
    figure.savefig(Path(path))
