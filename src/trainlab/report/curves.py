"""curves.png: the pictures the lecture reads a run by: loss, train vs val accuracy, lr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainlab.smoothing import smooth


def smoothing_for(n_steps: int) -> float:
    """A moving-average memory of about 2% of the run (1 / (1 - beta) steps, at most ~50).

    Short runs get little or no smoothing: a full-batch run (one step per epoch) has no
    minibatch noise to average, and a 5-step memory made its smoothed curve lag the real one."""
    return min(0.98, max(0.0, 1.0 - 50.0 / max(n_steps, 1)))


def plot_curves(
    metrics: list[dict[str, Any]],
    step_losses: list[float],
    path: Path,
    advice: list[dict[str, str]] = (),
    title: str = "",
) -> None:
    """Three panels: loss per step (raw and smoothed) with val loss per epoch; train and val
    accuracy per epoch (the gap is overfitting); the learning rate."""
    # matplotlib loads only when a plot is drawn (~0.3 s), not with every `import trainlab`
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.2))
    FigureCanvasAgg(fig)
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    epochs = [m["epoch"] for m in metrics]
    steps_at = [m["step"] for m in metrics]
    finite = [v for v in step_losses if v is not None and np.isfinite(v)]
    if finite:
        xs = np.arange(1, len(step_losses) + 1)
        ys = np.array([v if v is not None and np.isfinite(v) else np.nan for v in step_losses])
        ax_loss.plot(xs, ys, color="tab:blue", alpha=0.25, lw=0.8, label="train loss (step)")
        ax_loss.plot(
            xs,
            smooth(step_losses, smoothing_for(len(step_losses))),
            color="tab:blue",
            lw=1.6,
            label="train loss (smoothed)",
        )
    val_loss = [m.get("val_loss") for m in metrics]
    if any(v is not None for v in val_loss):
        ax_loss.plot(
            steps_at,
            [np.nan if v is None else v for v in val_loss],
            "o-",
            color="tab:orange",
            label="val loss (epoch)",
        )
    ax_loss.set(xlabel="step", ylabel="cross-entropy", title="loss")
    if finite and max(finite) / max(min(finite), 1e-8) > 50:
        ax_loss.set_yscale("log")
    ax_loss.legend(fontsize=8)

    def series(key: str) -> list[float]:
        return [np.nan if m.get(key) is None else 100 * m[key] for m in metrics]

    ax_acc.plot(epochs, series("train_accuracy"), "o-", label="train")
    ax_acc.plot(epochs, series("val_accuracy"), "o-", label="validation")
    if metrics:
        best = max(metrics, key=lambda m: m.get("val_accuracy") or -1)
        ax_acc.axvline(best["epoch"], color="grey", ls=":", lw=1, label="best epoch")
    ax_acc.set(
        xlabel="epoch",
        ylabel="accuracy (%)",
        title="train vs validation (a growing gap = overfitting)",
    )
    ax_acc.legend(fontsize=8)
    ax_acc.grid(alpha=0.3)

    ax_lr.semilogy(epochs, [m.get("lr") for m in metrics], "o-", color="tab:green")
    ax_lr.set(xlabel="epoch", ylabel="learning rate (end of epoch)", title="learning rate")
    if any(m.get("update_ratio") for m in metrics):
        twin = ax_lr.twinx()
        twin.semilogy(
            epochs,
            [m.get("update_ratio") or np.nan for m in metrics],
            "s--",
            color="tab:purple",
            label="update/weight ratio",
        )
        twin.axhline(1e-3, color="tab:purple", ls=":", lw=0.8)
        twin.set_ylabel("update / weight (target ~1e-3)", color="tab:purple")
    if advice:
        text = "\n".join(f"[{a['code']}] {a['message']}" for a in advice)
        fig.text(0.01, 0.01, text, fontsize=8, va="bottom", color="darkred", wrap=True)
    if title:
        fig.suptitle(title)
    # fixed margins: matplotlib's tight_layout took as long as savefig (~0.35 s a run)
    fig.subplots_adjust(
        left=0.045,
        right=0.945,
        wspace=0.32,
        top=0.85 if title else 0.92,
        bottom=0.13 + 0.04 * len(advice),
    )
    fig.savefig(path, dpi=110)
