"""The search's pictures, params.png and curves.png (trainlab.search.study.plots), drawn with
Pillow by trainlab.report.raster: what they show for each kind of dimension, coarse-to-fine
rounds, pruned and diverged trials and an empty study; and the plotter's pieces they need
(inverted log axes labelled by a function, categories, spans, the colour ramp)."""

import math

import numpy as np
import optuna
import pytest
from PIL import Image

from trainlab.report.raster import VIRIDIS, Axis, Canvas, Panel, ramp, rgb, star
from trainlab.search.config import SearchConfig
from trainlab.search.space import parse_space
from trainlab.search.strategies import make_sampler
from trainlab.search.study.plots import (
    CURVES_HEIGHT,
    CURVES_WIDTH,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    TITLE_HEIGHT,
    curves_from_study,
    plot_curves,
    plot_params,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

# every kind of axis: log, beta (inverted log of 1 - beta), log int, linear, int, categories
SPACE = parse_space(
    {
        "optim.lr": "loguniform(1e-5, 1)",
        "optim.betas.0": "beta(0.8, 0.999)",
        "model.width": "logint(8, 512)",
        "model.dropout": "uniform(0, 0.5)",
        "model.depth": "int(1, 4)",
        "optim.name": "choice([sgd, adam, rmsprop])",
    },
    lambda p: True,
)
ORANGE = rgb("orange", 0.12)  # round 1's shaded box over white
GOLD, GREY = rgb("gold"), rgb("#8c8c8c")


def coarse_to_fine_study() -> optuna.Study:
    """36 trials in 3 rounds, with epochs reported; every 7th pruned at epoch 4, every 11th
    diverged (NaN from its third epoch, recorded as pruned as the driver does)."""
    cfg = SearchConfig(strategy="coarse-to-fine", trials=36, rounds=3, seed=0)
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(cfg, SPACE), study_name="c2f"
    )

    def objective(trial):
        v = SPACE.suggest(trial)
        final = 0.95 - 0.08 * (math.log10(v["optim.lr"]) + 2.5) ** 2
        if trial.number % 11 == 10:
            for epoch in range(1, 6):
                trial.report(0.4 if epoch < 3 else math.nan, step=epoch)
            raise optuna.TrialPruned()
        for epoch in range(1, 9):
            trial.report(final - 0.5 / epoch, step=epoch)
            if trial.number % 7 == 6 and epoch == 4:
                raise optuna.TrialPruned()
        return final

    study.optimize(objective, n_trials=36)
    return study


@pytest.fixture(scope="module")
def study():
    return coarse_to_fine_study()


def pixels(image: Image.Image, box=None) -> np.ndarray:
    image = image.convert("RGB")
    return np.asarray(image.crop(box) if box else image).astype(int)


def count(image: Image.Image, color, box=None, tol: int = 3) -> int:
    """Pixels within `tol` of `color` (each channel) inside box (left, top, right, bottom)."""
    return int((np.abs(pixels(image, box) - np.array(color)).max(axis=2) <= tol).sum())


def ink(image: Image.Image, box=None) -> int:
    """Pixels darker than the light grid lines."""
    return int((pixels(image, box).sum(axis=2) < 600).sum())


def panel_box(i: int, ncols: int = 3) -> tuple[int, int, int, int]:
    row, col = divmod(i, ncols)
    x0, y0 = col * PANEL_WIDTH, TITLE_HEIGHT + row * PANEL_HEIGHT
    return x0, y0, x0 + PANEL_WIDTH, y0 + PANEL_HEIGHT


def test_params_png_shows_every_dimension_rounds_pruned_and_best(study, tmp_path):
    path = plot_params(study, SPACE, tmp_path / "sub" / "params.png")
    image = Image.open(path)
    assert image.format == "PNG"
    assert image.size == (3 * PANEL_WIDTH, 2 * PANEL_HEIGHT + TITLE_HEIGHT)
    for i in range(6):  # each panel: its frame, ticks, labels and points
        assert ink(image, panel_box(i)) > 3000, i
    assert count(image, ORANGE) > 5000  # round 1's box shaded (round 2's inside it)
    assert count(image, GOLD) > 6 * 20  # the best trial: a gold star in each panel
    assert count(image, GREY, tol=12) > 6 * 10  # pruned trials: grey crosses
    # categorical points are jittered the same way every time: the same picture
    again = plot_params(study, SPACE, tmp_path / "again.png")
    assert again.read_bytes() == path.read_bytes()


def test_params_png_of_an_empty_study_says_so(tmp_path):
    empty = optuna.create_study(direction="maximize", study_name="empty")
    image = Image.open(plot_params(empty, SPACE, tmp_path / "params.png"))
    assert image.size == (3 * PANEL_WIDTH, 2 * PANEL_HEIGHT + TITLE_HEIGHT)
    for i in range(6):  # "no finished trials" in the middle of each panel
        x0, y0, _, _ = panel_box(i)
        assert ink(image, (x0 + 180, y0 + 140, x0 + 360, y0 + 200)) > 100, i
    one = parse_space({"optim.lr": "loguniform(1e-4, 1)"}, lambda p: True)
    image = Image.open(plot_params(empty, one, tmp_path / "one.png"))
    assert image.size == (PANEL_WIDTH, PANEL_HEIGHT + TITLE_HEIGHT)


def test_curves_png_draws_every_trial_and_the_best(study, tmp_path):
    curves = curves_from_study(study)
    assert len(curves) == 36 and len(curves[0]) == 8 and math.isnan(curves[10][-1])
    path = plot_curves(curves, tmp_path / "curves.png", title="c2f: every trial")
    image = Image.open(path)
    assert image.format == "PNG" and image.size == (CURVES_WIDTH, CURVES_HEIGHT)
    panel = (80, 40, CURVES_WIDTH - 110, CURVES_HEIGHT - 60)
    assert count(image, (0, 0, 0), panel, tol=30) > 1000  # the best curve, thick and black
    bar = (CURVES_WIDTH - 87, CURVES_HEIGHT - 70, CURVES_WIDTH - 75, CURVES_HEIGHT - 54)
    # the trial numbers' colour bar: the ramp's first colour at its foot
    assert count(image, rgb(VIRIDIS[0]), bar, tol=20) > 20
    empty = Image.open(plot_curves({}, tmp_path / "empty.png"))
    assert empty.size == (CURVES_WIDTH, CURVES_HEIGHT)
    middle = (CURVES_WIDTH // 2 - 100, CURVES_HEIGHT // 2 - 40, CURVES_WIDTH // 2 + 60, 280)
    assert ink(empty, middle) > 50  # "no curves"


def test_a_diverged_trials_missing_epochs_are_gaps(tmp_path):
    """Trial 0's line (the first colour of the ramp) stops where its value is NaN or infinite
    and starts again after; the best trial (maximize, or minimize) is drawn either way."""

    def purple(curves, name, **kw):
        image = Image.open(plot_curves(curves, tmp_path / name, **kw))
        a = pixels(image, (72, 34, CURVES_WIDTH - 100, CURVES_HEIGHT - 52))
        return int(((a[..., 0] - a[..., 1] > 25) & (a[..., 2] - a[..., 1] > 25)).sum())

    whole = purple({0: [0.55] * 5, 1: [0.9] * 5}, "whole.png")
    for bad in (math.nan, math.inf):  # drawn from epoch 1 to 2 and 4 to 5: half the length
        gaps = purple({0: [0.55, 0.55, bad, 0.55, 0.55], 1: [0.9] * 5}, "gaps.png")
        assert 0.3 * whole < gaps < 0.7 * whole
    # minimizing, trial 0 is the best: drawn black, not in the ramp's colour
    assert purple({0: [0.55] * 5, 1: [0.9] * 5}, "min.png", maximize=False) < 0.2 * whole


def test_the_beta_axis_is_1_minus_beta_on_an_inverted_log_axis_labelled_in_beta():
    axis = Axis([0.2, 0.001], log=True, invert=True, label=lambda x: f"{1 - x:.6g}").to(0, 100)
    left, right = axis.pixels([0.1, 0.001])  # beta 0.9, then 0.999
    assert left < right  # read left to right as beta grows
    assert [text for _, text in axis.ticks()] == ["0.999", "0.99", "0.9"]


def test_categories_are_named_ticks_half_a_step_in():
    axis = Axis.categories(["sgd", "adam", "rmsprop"]).to(0, 300)
    assert axis.ticks() == [(0, "sgd"), (1, "adam"), (2, "rmsprop")]
    assert list(axis.pixels([-0.5, 0, 2.5])) == pytest.approx([0, 50, 300])


def test_the_ramp_runs_through_its_stops():
    assert ramp(0.0) == VIRIDIS[0] and ramp(1.0) == VIRIDIS[-1] and ramp(0.5) == VIRIDIS[2]
    assert ramp(-1) == ramp(0.0) and ramp(2) == ramp(1.0)
    a, b, m = rgb(VIRIDIS[0]), rgb(VIRIDIS[1]), rgb(ramp(0.125))
    assert all(min(x, y) <= z <= max(x, y) for x, y, z in zip(a, b, m))


def test_spans_shade_what_is_under_them_and_markers_have_their_shapes(tmp_path):
    canvas = Canvas(200, 100)
    panel = Panel(canvas, (0, 0, 200, 100), Axis([0, 10], margin=0), Axis([0, 1], margin=0))
    panel.vspan(2, 6, "orange", alpha=0.12)
    panel.vspan(4, 8, "orange", alpha=0.12)  # overlapping: darker
    canvas.save(tmp_path / "spans.png")
    image = Image.open(tmp_path / "spans.png")
    assert image.getpixel((60, 50)) == pytest.approx(ORANGE, abs=1)  # the first span only
    assert image.getpixel((100, 50))[1] < ORANGE[1] - 5  # both
    assert image.getpixel((180, 50)) == (255, 255, 255)  # neither
    corners = star(0.0, 0.0, 10.0)
    assert len(corners) == 10 and corners[0] == pytest.approx((0.0, -10.0))  # a point up
    assert max(math.hypot(x, y) for x, y in corners[1::2]) < 4.0
