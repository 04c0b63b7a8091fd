"""Pictures of optimizer trajectories: contours of the surface, one colour per optimizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainlab.landscape.optimize import OPTIMIZERS, Trajectory
from trainlab.landscape.surfaces import Surface

# one fixed colour per optimizer, so the same optimizer looks the same on every surface
COLOURS = dict(zip(OPTIMIZERS, ("#d62728", "#1f77b4", "#17becf", "#9467bd", "#ff7f0e",
                                "#2ca02c", "#8c564b")))
_FLOOR = 1e-4  # contours of f - f_min start here (log scale)


def _grid(surface: Surface, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs = torch.linspace(*surface.xlim, n, dtype=torch.float64)
    ys = torch.linspace(*surface.ylim, n, dtype=torch.float64)
    x, y = torch.meshgrid(xs, ys, indexing="xy")
    z = (surface(x, y) - surface.min_value).clamp_min(_FLOOR)
    return x.numpy(), y.numpy(), z.numpy()


def _label(t: Trajectory, surface: Surface) -> str:
    steps = t.steps_to_tol(surface)
    tail = "diverged" if t.diverged else ("not reached" if steps is None else f"{steps} steps")
    return f"{t.optimizer:<9} lr={t.lr:<8.3g} {tail}"


def _draw_surface(ax, surface: Surface) -> None:
    """Filled log-spaced contours of f - f_min, the start, the minimum and other landmarks."""
    from matplotlib.colors import LogNorm

    x, y, z = _grid(surface)
    top = float(np.quantile(z, 0.98))
    levels = np.geomspace(max(float(z.min()), _FLOOR), top, 18)
    ax.contourf(x, y, np.minimum(z, top), levels=levels, norm=LogNorm(), cmap="Greys_r",
                alpha=0.55)
    ax.contour(x, y, z, levels=levels, norm=LogNorm(), colors="0.45", linewidths=0.4)
    ax.plot(*surface.start, "o", color="black", markersize=8, zorder=5, label="start")
    ax.plot(*surface.minimum, "*", color="gold", markeredgecolor="black", markersize=16,
            zorder=5, label="global minimum")
    for name, point in surface.landmarks:
        ax.plot(*point, "X", color="white", markeredgecolor="black", markersize=10, zorder=5,
                label=name)
    ax.set_xlim(*surface.xlim)
    ax.set_ylim(*surface.ylim)
    ax.set_xlabel("w1")
    ax.set_ylabel("w2")


def _finish_legend(ax, **kwargs) -> None:
    legend = ax.legend(prop={"family": "monospace", "size": 8}, framealpha=0.9, **kwargs)
    legend.set_zorder(10)


def draw(surface: Surface, trajectories: list[Trajectory], out: Path) -> Path:
    """Write the picture: trajectories over contours (left), loss above minimum per step (right)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 6), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=(1.35, 1))
    _draw_surface(left, surface)
    for t in trajectories:
        pts = t.points.numpy()
        left.plot(pts[:, 0], pts[:, 1], "-", color=COLOURS[t.optimizer], linewidth=1.6,
                  marker=".", markersize=3, alpha=0.9, label=_label(t, surface))
    left.set_title(surface.title)
    _finish_legend(left, loc="best")

    for t in trajectories:
        gap = (t.losses - surface.min_value).clamp_min(1e-16).numpy()
        right.semilogy(np.arange(len(gap)), gap, color=COLOURS[t.optimizer], linewidth=1.6,
                       label=t.optimizer)
    right.axhline(surface.tol, color="black", linestyle="--", linewidth=1,
                  label=f"tolerance {surface.tol:g}")
    right.set_xlabel("step")
    right.set_ylabel("loss - minimum")
    right.set_ylim(bottom=max(1e-12, right.get_ylim()[0]))
    right.grid(True, which="major", alpha=0.3)
    right.set_title("Loss above the minimum" + (f" (gradient noise std {surface.noise:g})"
                                                 if surface.noise else ""))
    _finish_legend(right, loc="upper right")
    fig.suptitle(surface.claim, fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def animate(surface: Surface, trajectories: list[Trajectory], out: Path,
            frames: int = 80, fps: int = 12) -> Path:
    """Write an animated GIF of the trajectories growing step by step (Pillow writer)."""
    from matplotlib.animation import FuncAnimation, PillowWriter
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    _draw_surface(ax, surface)
    lines = {}
    heads = {}
    for t in trajectories:
        colour = COLOURS[t.optimizer]
        (lines[t.optimizer],) = ax.plot([], [], "-", color=colour, linewidth=1.6,
                                        label=_label(t, surface))
        (heads[t.optimizer],) = ax.plot([], [], "o", color=colour, markeredgecolor="black",
                                        markersize=7, zorder=6)
    _finish_legend(ax, loc="best")
    title = ax.set_title("")
    longest = max(len(t.points) for t in trajectories) - 1
    steps = np.unique(np.linspace(0, longest, frames).round().astype(int))

    def update(i: int):
        k = int(steps[i])
        for t in trajectories:
            pts = t.points[: k + 1].numpy()
            lines[t.optimizer].set_data(pts[:, 0], pts[:, 1])
            heads[t.optimizer].set_data(pts[-1:, 0], pts[-1:, 1])
        title.set_text(f"{surface.title}: step {k}")
        return [*lines.values(), *heads.values(), title]

    animation = FuncAnimation(fig, update, frames=len(steps), blit=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    animation.save(str(out), writer=PillowWriter(fps=fps), dpi=80)
    return out
