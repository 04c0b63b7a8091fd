"""Pictures of optimizer trajectories over a surface's contours, and of their loss per step.

Up to three optimizers share one map (one colour each); more get one small map each, on the same
axes and colours, so seven paths do not hide each other. A last panel shows loss - minimum.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainlab.landscape.optimize import OPTIMIZERS, Trajectory
from trainlab.landscape.surfaces import Surface

# one fixed colour per optimizer, so the same optimizer looks the same on every surface
COLOURS = dict(
    zip(OPTIMIZERS, ("#d62728", "#1f77b4", "#17becf", "#9467bd", "#ff7f0e", "#2ca02c", "#8c564b"))
)
OVERLAY_MAX = 3  # at most this many optimizers share one map
_FLOOR = 1e-4  # contours of f - f_min start here (log scale)


def _outcome(t: Trajectory, surface: Surface) -> str:
    steps = t.steps_to_tol(surface)
    if t.diverged:
        return "diverged"
    return "tolerance not reached" if steps is None else f"within tolerance after {steps} steps"


def _contours(surface: Surface, n: int = 300) -> tuple[np.ndarray, ...]:
    xs = torch.linspace(*surface.xlim, n, dtype=torch.float64)
    ys = torch.linspace(*surface.ylim, n, dtype=torch.float64)
    x, y = torch.meshgrid(xs, ys, indexing="xy")
    z = (surface(x, y) - surface.min_value).clamp_min(_FLOOR).numpy()
    top = float(np.quantile(z, 0.98))
    levels = np.geomspace(max(float(z.min()), _FLOOR), top, 16)
    return x.numpy(), y.numpy(), np.minimum(z, top), levels


def _draw_map(ax, surface: Surface, grid: tuple[np.ndarray, ...], small: bool) -> None:
    """Log-spaced contours of f - f_min, the start, the global minimum and other landmarks."""
    from matplotlib.colors import LogNorm

    x, y, z, levels = grid
    ax.contourf(x, y, z, levels=levels, norm=LogNorm(), cmap="Greys_r", alpha=0.5)
    ax.contour(x, y, z, levels=levels, norm=LogNorm(), colors="0.5", linewidths=0.4)
    size = 0.7 if small else 1.0
    ax.plot(*surface.start, "o", color="black", markersize=8 * size, zorder=5, label="start")
    ax.plot(
        *surface.minimum,
        "*",
        color="gold",
        markeredgecolor="black",
        markersize=16 * size,
        zorder=5,
        label="global minimum",
    )
    for name, point in surface.landmarks:
        ax.plot(
            *point,
            "X",
            color="white",
            markeredgecolor="black",
            markersize=10 * size,
            zorder=5,
            label=name,
        )
    ax.set_xlim(*surface.xlim)
    ax.set_ylim(*surface.ylim)
    if not small:
        ax.set_xlabel("w1")
        ax.set_ylabel("w2")
    else:
        ax.tick_params(labelsize=7)


@dataclass
class _Layout:
    fig: object
    maps: dict  # optimizer -> the axes its path is drawn on
    loss: object  # axes of loss - minimum per step
    overlay: bool


def _layout(surface: Surface, trajectories: list[Trajectory], scale: float = 1.0) -> _Layout:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = _contours(surface)
    n = len(trajectories)
    if n <= OVERLAY_MAX:
        fig = Figure(figsize=(14 * scale, 6 * scale), layout="constrained")
        left, loss = fig.subplots(1, 2, width_ratios=(1.35, 1))
        _draw_map(left, surface, grid, small=False)
        maps = {t.optimizer: left for t in trajectories}
    else:
        cols = 4
        rows = math.ceil((n + 1) / cols)
        fig = Figure(figsize=(16 * scale, 3.9 * rows * scale), layout="constrained")
        axes = list(fig.subplots(rows, cols).flat)
        maps = {}
        for ax, t in zip(axes, trajectories):
            _draw_map(ax, surface, grid, small=True)
            ax.set_title(
                f"{t.optimizer}  lr={t.lr:.3g}\n{_outcome(t, surface)}",
                color=COLOURS[t.optimizer],
                fontsize=10,
            )
            maps[t.optimizer] = ax
        axes[0].legend(fontsize=7, loc="best", framealpha=0.9)
        loss = axes[n]
        for ax in axes[n + 1 :]:
            ax.set_visible(False)
    FigureCanvasAgg(fig)
    claim = "\n".join(textwrap.wrap(surface.claim, width=int(130 * scale)))
    fig.suptitle(f"{surface.title}\n{claim}", fontsize=12)
    _setup_loss_axes(loss, surface, trajectories)
    return _Layout(fig, maps, loss, n <= OVERLAY_MAX)


def _gap(t: Trajectory, surface: Surface) -> np.ndarray:
    return (t.losses - surface.min_value).clamp_min(1e-16).numpy()


def _setup_loss_axes(ax, surface: Surface, trajectories: list[Trajectory]) -> None:
    gaps = [_gap(t, surface) for t in trajectories]
    top = 10 * max(float(g[0]) for g in gaps)
    low = min(float(np.nanmin(g)) for g in gaps)
    bottom = max(low / 3, surface.tol * 1e-9, 1e-14)
    ax.set_yscale("log")
    ax.set_ylim(bottom, max(top, 10 * bottom))
    ax.set_xlim(0, max(len(g) for g in gaps) - 1)
    ax.axhline(
        surface.tol, color="black", linestyle="--", linewidth=1, label=f"tolerance {surface.tol:g}"
    )
    ax.set_xlabel("step")
    ax.set_ylabel("loss - minimum")
    ax.grid(True, which="major", alpha=0.3)
    noise = f", gradient noise std {surface.noise:g}" if surface.noise else ""
    ax.set_title(f"Loss above the minimum{noise}", fontsize=10)


def _legend_label(t: Trajectory, surface: Surface) -> str:
    steps = t.steps_to_tol(surface)
    tail = "diverged" if t.diverged else ("not reached" if steps is None else f"{steps} steps")
    return f"{t.optimizer:<9} lr={t.lr:<7.3g} {tail}"


def _draw_paths(layout: _Layout, surface: Surface, trajectories: list[Trajectory]) -> tuple:
    """Empty path, head and loss artists per optimizer, filled in by _show(step)."""
    paths, heads, curves = {}, {}, {}
    for t in trajectories:
        colour = COLOURS[t.optimizer]
        ax = layout.maps[t.optimizer]
        label = _legend_label(t, surface) if layout.overlay else None
        (paths[t.optimizer],) = ax.plot(
            [],
            [],
            "-",
            color=colour,
            linewidth=1.5,
            marker=".",
            markersize=3,
            alpha=0.9,
            label=label,
        )
        (heads[t.optimizer],) = ax.plot(
            [], [], "o", color=colour, markeredgecolor="black", markersize=6, zorder=6
        )
        (curves[t.optimizer],) = layout.loss.plot(
            [], [], color=colour, linewidth=1.4, label=t.optimizer
        )
    if layout.overlay:
        next(iter(layout.maps.values())).legend(
            prop={"family": "monospace", "size": 8}, loc="best", framealpha=0.9
        )
    layout.loss.legend(fontsize=8, loc="best", framealpha=0.9)
    return paths, heads, curves


def _show(artists: tuple, surface: Surface, trajectories: list[Trajectory], step: int) -> None:
    paths, heads, curves = artists
    for t in trajectories:
        pts = t.points[: step + 1].numpy()
        paths[t.optimizer].set_data(pts[:, 0], pts[:, 1])
        heads[t.optimizer].set_data(pts[-1:, 0], pts[-1:, 1])
        gap = _gap(t, surface)[: step + 1]
        curves[t.optimizer].set_data(np.arange(len(gap)), gap)


def draw(surface: Surface, trajectories: list[Trajectory], out: Path) -> Path:
    """Write the picture of the whole runs to `out` (format from its suffix)."""
    layout = _layout(surface, trajectories)
    artists = _draw_paths(layout, surface, trajectories)
    _show(artists, surface, trajectories, max(len(t.points) for t in trajectories) - 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    layout.fig.savefig(out, dpi=110)
    return out


def animate(
    surface: Surface,
    trajectories: list[Trajectory],
    out: Path,
    frames: int = 60,
    fps: int = 10,
    dpi: int = 90,
) -> Path:
    """Write an animated GIF of the same picture growing step by step.

    The static part (contours, axes, text) is drawn once; each frame redraws only the paths
    (blitting), and Pillow (matplotlib's GIF writer backend) writes the frames.
    """
    from PIL import Image

    layout = _layout(surface, trajectories, scale=0.75)
    layout.fig.set_dpi(dpi)
    paths, heads, curves = _draw_paths(layout, surface, trajectories)
    moving = [*paths.values(), *heads.values(), *curves.values()]
    for artist in moving:
        artist.set_animated(True)
    canvas = layout.fig.canvas
    canvas.draw()  # lays out and draws everything that does not move
    background = canvas.copy_from_bbox(layout.fig.bbox)
    longest = max(len(t.points) for t in trajectories) - 1
    steps = np.unique(np.linspace(0, longest, frames).round().astype(int))
    images = []
    for step in steps:
        canvas.restore_region(background)
        _show((paths, heads, curves), surface, trajectories, int(step))
        for artist in moving:
            artist.axes.draw_artist(artist)
        rgba = np.asarray(canvas.buffer_rgba())
        images.append(Image.fromarray(rgba[..., :3].copy()).quantize(colors=256))
    out.parent.mkdir(parents=True, exist_ok=True)
    durations = [1000 // fps] * (len(images) - 1) + [2000]  # hold the last frame
    images[0].save(out, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return out
