"""The lecture's search plots: accuracy against each hyperparameter, and the caviar view.

Drawn with trainlab.report.raster (Pillow), not matplotlib: every `trainlab search` draws both at
its end, and importing matplotlib plus two constrained-layout figures cost about 1.7 s of the
search's wall time (issue 30). The pictures keep their sizes (params.png 484 x 385 pixels a
panel, three panels a row, under a title; curves.png 825 x 506) and what they show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from trainlab.report.raster import LABEL, TAB10, Axis, Canvas, Panel, ramp
from trainlab.search.space import Dimension, Space
from trainlab.search.strategies.base import BLOCK_ATTR, ROUND_ATTR
from trainlab.search.study.rounds import boxes

PANEL_WIDTH, PANEL_HEIGHT, TITLE_HEIGHT = 484, 385, 44  # params.png, pixels
PANELS_PER_ROW = 3
CURVES_WIDTH, CURVES_HEIGHT = 825, 506  # curves.png, pixels
PRUNED_COLOR = "#8c8c8c"
BLUE = TAB10[0]
JITTER = 0.15  # categorical points spread +-0.15 of a category's step (seeded: the same picture)
Y_TICKS = 8  # about as many value ticks as matplotlib shows (0.1 apart for accuracies)
RAMP_END = 0.92  # the trial-number ramp stops short of viridis's palest yellow


def _save(canvas: Canvas, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _group_of(trial: FrozenTrial) -> tuple[str, int] | None:
    """("round", r) for coarse-to-fine trials, ("block", b) for block-coordinate ones."""
    if ROUND_ATTR in trial.system_attrs:
        return "round", int(trial.system_attrs[ROUND_ATTR])
    if BLOCK_ATTR in trial.system_attrs:
        return "block", int(trial.system_attrs[BLOCK_ATTR])
    return None


def _colors(n: int) -> list[str]:
    """tab10 for up to ten groups, else n colours along the viridis ramp."""
    if n <= len(TAB10):
        return list(TAB10[:n])
    return [ramp(x) for x in np.linspace(0.0, 0.95, n)]


def _x_of(dim: Dimension, config_value: Any) -> float:
    """Where a config value sits on the dimension's axis (1 - beta for beta axes)."""
    return 1.0 - config_value if dim.kind == "beta" else config_value


def _on_axis(dim: Dimension, trial: FrozenTrial) -> bool:
    """Whether the trial has a value for this dimension that its axis can show."""
    if dim.param_name not in trial.params:
        return False
    return not dim.is_categorical or trial.params[dim.param_name] in dim.choices


def _beta_label(x: float) -> str:
    return f"{1.0 - x:.6g}"


def _x_axis(dim: Dimension) -> tuple[Axis, str]:
    """The dimension's axis and its label: the choices as named ticks; a log axis for log
    dimensions; for beta, 1 - beta on a log axis labelled in beta, inverted so that it reads
    left to right as beta grows."""
    if dim.is_categorical:
        return Axis.categories([str(c) for c in dim.choices]), dim.name
    ends = [_x_of(dim, dim.low), _x_of(dim, dim.high)]
    if dim.kind == "beta":
        axis = Axis(ends, log=True, margin=0.03, invert=True, label=_beta_label)
        return axis, f"{dim.name} (beta; axis: 1 - beta, log)"
    axis = Axis(ends, log=dim.log, integer=dim.kind == "int", margin=0.03)
    return axis, f"{dim.name}{' (log)' if dim.log else ''}"


def _last_value(trial: FrozenTrial) -> float:
    return trial.intermediate_values[max(trial.intermediate_values)]


def _xy(
    trials: Sequence[FrozenTrial], x: Mapping[int, float], y: Mapping[int, float]
) -> tuple[list[float], list[float]]:
    return [x[t.number] for t in trials], [y[t.number] for t in trials]


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
    shaded span between dashed edges. Pruned trials appear as grey crosses at their last
    reported value (a diverged trial's non-finite value is not drawn); the best trial is a gold
    star. Categorical values are jittered sideways, the same way every time.
    """
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    n = max(1, len(space))
    ncols = min(PANELS_PER_ROW, n)
    nrows = math.ceil(n / ncols)
    canvas = Canvas(PANEL_WIDTH * ncols, PANEL_HEIGHT * nrows + TITLE_HEIGHT)

    groups = sorted({g for t in done + pruned if (g := _group_of(t)) is not None})
    colors = dict(zip(groups, _colors(len(groups))))
    study_boxes = boxes(study)
    maximize = study.direction == StudyDirection.MAXIMIZE
    best = (max if maximize else min)(done, key=lambda t: t.value) if done else None
    shown = sorted(done + pruned, key=lambda t: t.number)
    values = {
        t.number: t.value if t.state == TrialState.COMPLETE else _last_value(t) for t in shown
    }
    y_values = [v for v in values.values() if v is not None and math.isfinite(v)]
    jitter = np.random.default_rng(0)

    for i, dim in enumerate(space):
        row, col = divmod(i, ncols)
        x0, y0 = col * PANEL_WIDTH, TITLE_HEIGHT + row * PANEL_HEIGHT
        box = (x0 + 72, y0 + 10, x0 + PANEL_WIDTH - 18, y0 + PANEL_HEIGHT - 52)
        x_axis, x_label = _x_axis(dim)
        panel = Panel(canvas, box, x_axis, Axis(y_values, target=Y_TICKS))
        panel.grid()
        for r, zoom in enumerate(study_boxes):
            if r == 0 or dim.name not in zoom or dim.is_categorical:
                continue
            low, high = sorted(_x_of(dim, v) for v in zoom[dim.name])
            color = colors.get(("round", r), "#808080")
            panel.vspan(low, high, color, alpha=0.12)
            for edge in (low, high):
                panel.vline(edge, color, style="--", width=1.2, alpha=0.5)

        on_axis = [t for t in shown if _on_axis(dim, t)]
        config = {t.number: space.config_values(t.params).get(dim.name) for t in on_axis}
        if dim.is_categorical:
            offsets = jitter.uniform(-JITTER, JITTER, len(on_axis))
            x = {
                t.number: dim.choices.index(config[t.number]) + dx
                for t, dx in zip(on_axis, offsets)
            }
        else:
            x = {number: _x_of(dim, v) for number, v in config.items()}

        usable = [t for t in done if _on_axis(dim, t)]
        for group in groups or [None]:
            members = [t for t in usable if _group_of(t) == group]
            if members:
                label = f"{group[0]} {group[1]}" if group else "trials"
                color = colors.get(group, BLUE)
                panel.scatter(*_xy(members, x, values), color, size=3.6, alpha=0.85, label=label)
        cut = [t for t in pruned if _on_axis(dim, t)]
        if cut:
            panel.scatter(*_xy(cut, x, values), PRUNED_COLOR, marker="x", label="pruned")
        if best is not None and _on_axis(dim, best):
            xy = _xy([best], x, values)
            panel.scatter(*xy, "gold", marker="*", size=9.0, edge="black", label="best")
        if not usable and not cut:
            panel.note("no finished trials")
        panel.frame(xlabel=x_label, ylabel=value_label)
        if i == 0 and (done or pruned):
            panel.legend()

    kind = "coarse to fine, boxes shaded" if study_boxes else f"{len(trials)} trials"
    title = f"{study.study_name}: {value_label} vs hyperparameters ({kind})"
    canvas.text((canvas.width / 2, TITLE_HEIGHT / 2), title, size=LABEL, anchor="mm")
    return _save(canvas, path)


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

    Each trial is a thin line coloured by trial number (a bar right of the panel reads the
    colours; a pruned trial's line simply stops, a diverged trial's non-finite epochs are gaps);
    the trial with the best value at any epoch is drawn thick and named in the legend.
    """
    canvas = Canvas(CURVES_WIDTH, CURVES_HEIGHT)
    curves = {k: [v if math.isfinite(v) else math.nan for v in c] for k, c in curves.items()}
    curves = {k: c for k, c in curves.items() if any(not math.isnan(v) for v in c)}
    finite = [v for c in curves.values() for v in c if not math.isnan(v)]
    longest = max((len(c) for c in curves.values()), default=1)
    box = (72, 34, CURVES_WIDTH - 100, CURVES_HEIGHT - 52)
    panel = Panel(canvas, box, Axis([1, longest], integer=True), Axis(finite, target=Y_TICKS))
    panel.grid()
    if not curves:
        panel.note("no curves")
    else:
        pick = max if maximize else min
        best = pick(curves, key=lambda k: pick(v for v in curves[k] if not math.isnan(v)))
        numbers = sorted(curves)
        lo, hi = numbers[0], max(numbers[-1], numbers[0] + 1)

        def color(number: float) -> str:
            return ramp(RAMP_END * (number - lo) / (hi - lo))

        for number in numbers:
            if number == best:
                continue
            values = curves[number]
            epochs = list(range(1, len(values) + 1))
            panel.line(epochs, values, color(number), width=1.4, alpha=0.6)
            panel.scatter(epochs[-1:], values[-1:], color(number), size=1.9, alpha=0.7)
        values = curves[best]
        top = pick(v for v in values if not math.isnan(v))
        label = f"best: trial {best} ({top:.3f})"
        panel.line(range(1, len(values) + 1), values, "black", width=3.6, label=label)
        panel.ramp_bar(lo, hi, color, label="trial number")
    panel.frame(
        title=title or f"caviar view: {len(curves)} trials, one curve each",
        xlabel="epoch",
        ylabel=value_label,
    )
    panel.legend()
    return _save(canvas, path)
