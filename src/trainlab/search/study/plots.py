"""The lecture's search plots: accuracy against each hyperparameter, and the caviar view.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot state, safe in
worker threads and without a display).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from trainlab.search.space import Dimension, Space
from trainlab.search.strategies.base import BLOCK_ATTR, ROUND_ATTR
from trainlab.search.study.rounds import boxes

_PRUNED_COLOR = "0.55"


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def _group_of(trial: FrozenTrial) -> tuple[str, int] | None:
    """("round", r) for coarse-to-fine trials, ("block", b) for block-coordinate ones."""
    if ROUND_ATTR in trial.system_attrs:
        return "round", int(trial.system_attrs[ROUND_ATTR])
    if BLOCK_ATTR in trial.system_attrs:
        return "block", int(trial.system_attrs[BLOCK_ATTR])
    return None


def _colors(n: int) -> list[Any]:
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["viridis"](x) for x in np.linspace(0.0, 0.95, n)]


def _x_of(dim: Dimension, config_value: Any) -> float:
    """Where a config value sits on the dimension's axis (1 - beta for beta axes)."""
    return 1.0 - config_value if dim.kind == "beta" else config_value


def _on_axis(dim: Dimension, trial: FrozenTrial) -> bool:
    """Whether the trial has a value for this dimension that its axis can show."""
    if dim.param_name not in trial.params:
        return False
    return not dim.is_categorical or trial.params[dim.param_name] in dim.choices


def _style_axis(ax: Axes, dim: Dimension) -> None:
    if dim.is_categorical:
        ax.set_xticks(range(len(dim.choices)))
        ax.set_xticklabels([str(c) for c in dim.choices])
        ax.set_xlim(-0.5, len(dim.choices) - 0.5)
        ax.set_xlabel(dim.name)
        return
    low, high = sorted((_x_of(dim, dim.low), _x_of(dim, dim.high)))
    if dim.log:
        ax.set_xscale("log")
        ax.set_xlim(
            low / 10 ** (0.03 * math.log10(high / low)),
            high * 10 ** (0.03 * math.log10(high / low)),
        )
    else:
        pad = 0.03 * (high - low)
        ax.set_xlim(low - pad, high + pad)
    if dim.kind == "beta":
        # 1 - beta on a log axis, labelled in beta and read left to right as beta grows.
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{1.0 - x:.6g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.invert_xaxis()
        ax.set_xlabel(f"{dim.name} (beta; axis: 1 - beta, log)")
    else:
        ax.set_xlabel(f"{dim.name}{' (log)' if dim.log else ''}")


def plot_params(
    study: Study,
    space: Space,
    path: str | Path,
    *,
    value_label: str = "validation accuracy",
) -> Path:
    """Validation accuracy against each hyperparameter, each on its own scale.

    Log dimensions get log axes; beta dimensions a log axis of 1 - beta labelled in beta.
    Coarse-to-fine rounds (or blocks) are coloured, and each zoomed round's box is drawn as a
    shaded span. Pruned trials appear as grey crosses at their last reported value; the best
    trial is a star.
    """
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    n = max(1, len(space))
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4.4 * ncols, 3.5 * nrows + 0.4), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]

    groups = sorted({g for t in done + pruned if (g := _group_of(t)) is not None})
    colors = dict(zip(groups, _colors(len(groups))))
    study_boxes = boxes(study)
    maximize = study.direction == StudyDirection.MAXIMIZE
    best = (max if maximize else min)(done, key=lambda t: t.value) if done else None
    jitter = np.random.default_rng(0)

    for ax, dim in zip(axes, space):
        _style_axis(ax, dim)
        ax.set_ylabel(value_label)
        ax.grid(True, alpha=0.3, which="major")
        for r, box in enumerate(study_boxes):
            if r == 0 or dim.name not in box or dim.is_categorical:
                continue
            low, high = sorted(_x_of(dim, v) for v in box[dim.name])
            color = colors.get(("round", r), "0.5")
            ax.axvspan(low, high, color=color, alpha=0.12, lw=0)
            ax.axvline(low, color=color, alpha=0.5, lw=0.8, ls="--")
            ax.axvline(high, color=color, alpha=0.5, lw=0.8, ls="--")

        def xs(ts: Sequence[FrozenTrial], dim: Dimension = dim) -> np.ndarray:
            values = [space.config_values(t.params).get(dim.name) for t in ts]
            if dim.is_categorical:
                index = [dim.choices.index(v) for v in values]
                return np.array(index, float) + jitter.uniform(-0.15, 0.15, len(index))
            return np.array([_x_of(dim, v) for v in values], float)

        usable = [t for t in done if _on_axis(dim, t)]
        for group in groups or [None]:
            members = [t for t in usable if _group_of(t) == group]
            if members:
                label = f"{group[0]} {group[1]}" if group else "trials"
                ax.scatter(
                    xs(members),
                    [t.value for t in members],
                    s=22,
                    color=colors.get(group, "tab:blue"),
                    alpha=0.85,
                    label=label,
                    edgecolors="none",
                )
        cut = [t for t in pruned if _on_axis(dim, t)]
        if cut:
            last = [t.intermediate_values[max(t.intermediate_values)] for t in cut]
            ax.scatter(xs(cut), last, s=18, marker="x", color=_PRUNED_COLOR, label="pruned")
        if best is not None and _on_axis(dim, best):
            ax.scatter(
                xs([best]),
                [best.value],
                s=140,
                marker="*",
                color="gold",
                edgecolors="black",
                linewidths=0.8,
                zorder=5,
                label="best",
            )
        if not usable and not cut:
            ax.text(
                0.5, 0.5, "no finished trials", ha="center", va="center", transform=ax.transAxes
            )

    if axes and (done or pruned):
        axes[0].legend(fontsize=7, loc="best", framealpha=0.8)
    kind = "coarse to fine, boxes shaded" if study_boxes else f"{len(trials)} trials"
    fig.suptitle(f"{study.study_name}: {value_label} vs hyperparameters ({kind})", fontsize=10)
    return _save(fig, path)


def curves_from_study(study: Study) -> dict[int, list[float]]:
    """Per trial number, the values reported each epoch (``trial.report``), in step order."""
    return {
        t.number: [t.intermediate_values[s] for s in sorted(t.intermediate_values)]
        for t in study.get_trials(deepcopy=False)
        if t.intermediate_values
    }


def plot_curves(
    curves: Mapping[int, Sequence[float]],
    path: str | Path,
    *,
    title: str | None = None,
    value_label: str = "validation accuracy",
    maximize: bool = True,
) -> Path:
    """The caviar view: every trial's validation accuracy per epoch in one figure.

    Each trial is a thin line coloured by trial number (a pruned trial's line simply stops); the
    trial with the best value at any epoch is drawn thick and named in the legend.
    """
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel(value_label)
    ax.grid(True, alpha=0.3)
    # a diverged trial's NaN/inf epochs are gaps in its line
    curves = {k: [v if math.isfinite(v) else math.nan for v in c] for k, c in curves.items()}
    curves = {k: c for k, c in curves.items() if any(not math.isnan(v) for v in c)}
    if not curves:
        ax.text(0.5, 0.5, "no curves", ha="center", va="center", transform=ax.transAxes)
    else:
        pick = max if maximize else min
        best = pick(curves, key=lambda k: pick(v for v in curves[k] if not math.isnan(v)))
        numbers = sorted(curves)
        cmap = colormaps["viridis"]
        norm = Normalize(vmin=numbers[0], vmax=max(numbers[-1], numbers[0] + 1))
        for number in numbers:
            if number == best:
                continue
            values = curves[number]
            epochs = np.arange(1, len(values) + 1)
            color = cmap(0.92 * norm(number))
            ax.plot(epochs, values, lw=0.9, alpha=0.6, color=color)
            ax.plot(epochs[-1:], values[-1:], "o", ms=2.5, alpha=0.7, color=color)
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="trial number", pad=0.01)
        values = curves[best]
        top = pick(v for v in values if not math.isnan(v))
        ax.plot(
            np.arange(1, len(values) + 1),
            values,
            lw=2.4,
            color="black",
            label=f"best: trial {best} ({top:.3f})",
        )
        ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or f"caviar view: {len(curves)} trials, one curve each", fontsize=10)
    return _save(fig, path)
