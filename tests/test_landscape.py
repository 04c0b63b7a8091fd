"""trainlab.landscape: the lecture's claims on its surfaces, as our own optimizers measure them."""

import dataclasses
import json
import math

import pytest
import torch

from trainlab import landscape, optim
from trainlab.errors import UserError
from trainlab.landscape import surfaces
from trainlab.landscape.compare import trajectories
from trainlab.landscape.optimize import Trajectory, make_optimizer, optimize
from trainlab.landscape.tuning import GRID, TUNED_LRS, sweep


def _runs(surface: str, names: str, **kwargs) -> dict[str, Trajectory]:
    return {t.optimizer: t for t in trajectories(surface, names, **kwargs)}


def _steps(surface: str, runs: dict[str, Trajectory]) -> dict[str, int | None]:
    s = surfaces.get(surface)
    return {name: t.steps_to_tol(s) for name, t in runs.items()}


def test_uses_our_optimizers():
    param = torch.zeros(2, requires_grad=True)
    assert isinstance(make_optimizer("momentum", [param], 0.1), optim.SGD)
    assert make_optimizer("nesterov", [param], 0.1).param_groups[0]["nesterov"] is True
    assert isinstance(make_optimizer("adamw", [param], 0.1), optim.AdamW)


def test_tuned_rates_cover_every_surface_and_optimizer():
    assert set(TUNED_LRS) == set(landscape.SURFACES)
    for table in TUNED_LRS.values():
        assert set(table) == set(landscape.OPTIMIZERS)
        assert all(0 < lr <= max(GRID) for lr in table.values())


def test_taco_sgd_zigzags_and_momentum_gets_there_sooner():
    runs = _runs("taco", "sgd,momentum,nesterov")
    steps = _steps("taco", runs)
    assert steps["momentum"] < steps["sgd"] / 2
    assert steps["nesterov"] < steps["momentum"]
    # zigzag: SGD's steep coordinate (w2) flips sign on almost every one of its first 50 steps
    w2 = runs["sgd"].points[:51, 1]
    flips = int((torch.sign(w2[1:]) != torch.sign(w2[:-1])).sum())
    assert flips >= 45


def test_saddle_sgd_crawls_momentum_rolls_through():
    s = surfaces.get("saddle")
    runs = _runs("saddle", "sgd,momentum")
    saddle_height = float(s(torch.tensor(0.0), torch.tensor(0.0))) - s.min_value
    # after 100 steps SGD still sits near the saddle's height; momentum is at the minimum
    assert float(runs["sgd"].losses[100]) - s.min_value > saddle_height / 2
    assert float(runs["momentum"].losses[100]) - s.min_value < s.tol
    steps = _steps("saddle", runs)
    assert steps["momentum"] < steps["sgd"] / 2


def test_local_minimum_traps_sgd_and_momentum_overshoots_it():
    s = surfaces.get("local-min")
    runs = _runs("local-min", "sgd,momentum,nesterov")
    steps = _steps("local-min", runs)
    assert steps["sgd"] is None
    local = torch.tensor(s.landmarks[0][1], dtype=torch.float64)
    assert float((runs["sgd"].points[-1] - local).norm()) < 0.05
    assert steps["momentum"] is not None and steps["nesterov"] is not None
    # and no SGD rate on the tuning grid gets out of the local minimum either
    for lr in (0.01, 0.05, 0.1, 0.15, 0.19):
        assert optimize(s, "sgd", lr, s.steps).steps_to_tol(s) is None


def test_noisy_momentum_gets_through_sgd_does_not():
    runs = [_runs("noisy", "sgd,momentum", seed=seed) for seed in range(3)]
    steps = [_steps("noisy", r) for r in runs]
    assert all(st["sgd"] is None for st in steps)
    assert sum(st["momentum"] is not None for st in steps) >= 2


def test_noisy_momentum_averages_the_noise_at_equal_effective_rate():
    # from the global minimum, momentum at lr 0.01 vs SGD at its effective rate 0.01 / (1 - 0.9)
    s = dataclasses.replace(surfaces.get("noisy"), start=surfaces.get("noisy").minimum)
    stats = {}
    for name, lr in (("momentum", 0.01), ("sgd", 0.1)):
        runs = [optimize(s, name, lr, 300, seed=seed) for seed in range(3)]
        excess = sum(float((t.losses[100:] - s.min_value).mean()) for t in runs) / 3
        step = sum(float((t.points[101:] - t.points[100:-1]).norm(dim=1).mean()) for t in runs) / 3
        stats[name] = (excess, step)
    assert stats["momentum"][0] < stats["sgd"][0]  # less loss left by the noise
    assert stats["momentum"][1] < stats["sgd"][1] / 3  # and a much smoother path


def test_noise_comes_from_the_seed():
    a = _runs("noisy", "momentum", seed=1)["momentum"].points
    b = _runs("noisy", "momentum", seed=1)["momentum"].points
    c = _runs("noisy", "momentum", seed=2)["momentum"].points
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_rotation_hurts_per_axis_adaptivity_only():
    names = "sgd,momentum,adagrad,rmsprop"
    taco = _steps("taco", _runs("taco", names, lrs={"adagrad": 1.47, "rmsprop": 0.104}))
    turned = _steps("rotated", _runs("rotated", names))
    # SGD and momentum do not care which way the valley points
    assert turned["sgd"] == taco["sgd"] and turned["momentum"] == taco["momentum"]
    # at the same rates, AdaGrad solves the aligned valley but not the turned one; RMSProp slows
    assert taco["adagrad"] is not None and turned["adagrad"] is None
    assert turned["rmsprop"] > 2 * taco["rmsprop"]


def test_rosenbrock_momentum_reaches_the_minimum_sgd_does_not():
    steps = _steps("rosenbrock", _runs("rosenbrock", "sgd,momentum"))
    assert steps["sgd"] is None and steps["momentum"] is not None


def test_steps_to_tol_means_reached_and_stayed():
    s = surfaces.get("taco")
    losses = torch.tensor([5.0, 1e-4, 2.0, 1e-4, 1e-5, 1e-6], dtype=torch.float64)
    t = Trajectory("sgd", 0.1, torch.zeros(6, 2, dtype=torch.float64), losses, False)
    assert t.steps_to_tol(s) == 3
    t.losses = torch.tensor([5.0, 1e-4, 2.0], dtype=torch.float64)
    assert t.steps_to_tol(s) is None


def test_sweep_finds_sgds_best_rate_below_the_stability_edge():
    # the taco's steep curvature is 10: SGD diverges above lr = 0.2, and is fastest just below
    lr, table = sweep(surfaces.get("taco"), "sgd", grid=(0.05, 0.1, 0.147, 0.215))
    assert 0.17 <= lr < 0.2
    assert lr == TUNED_LRS["taco"]["sgd"]
    assert len(table) > 4


def test_run_writes_picture_and_table(tmp_path):
    out = tmp_path / "pics" / "taco.png"
    result = landscape.run(
        "taco",
        optimizers=["sgd", "momentum", "adam", "rmsprop"],
        steps=120,
        lrs={"adam": 0.05},
        out=out,
    )
    assert result["plot"] == str(out) and result["gif"] is None
    from PIL import Image

    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] >= 1200
    rows = {r["optimizer"]: r for r in result["rows"]}
    assert list(rows) == ["sgd", "momentum", "adam", "rmsprop"]
    assert rows["adam"]["lr"] == 0.05 and rows["sgd"]["lr"] == TUNED_LRS["taco"]["sgd"]
    for row in rows.values():
        assert set(row) >= {"optimizer", "lr", "steps_to_tol", "final_loss", "path_length"}
        assert row["path_length"] > 0 and math.isfinite(row["final_loss"])
    json.dumps(result, allow_nan=False)  # what --json prints


def test_run_gif_and_divergence(tmp_path):
    result = landscape.run(
        "saddle",
        optimizers="sgd,momentum",
        steps=40,
        lrs={"sgd": 0.5},
        out=tmp_path / "saddle.png",
        gif=True,
    )
    from PIL import Image

    with Image.open(result["gif"]) as gif:
        assert gif.format == "GIF" and gif.n_frames > 20
    sgd = result["rows"][0]
    assert sgd["diverged"] and sgd["final_loss"] is None and sgd["steps_to_tol"] is None
    json.dumps(result, allow_nan=False)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(surface="bowl"), "--surface"),
        (dict(optimizers="sgd,lion"), "--optimizers"),
        (dict(optimizers=[]), "--optimizers"),
        (dict(steps=0), "--steps"),
        (dict(lrs={"sgd": -1.0}), "--lrs"),
        (dict(lrs={"sgd": float("nan")}), "--lrs"),
        (dict(lrs={"lion": 0.1}), "--lrs"),
        (dict(out="picture.txt"), "--out"),
    ],
)
def test_bad_input_is_a_user_error(kwargs, field, tmp_path):
    with pytest.raises(UserError, match=f"^{field}: "):
        landscape.run(**({"out": tmp_path / "x.png"} | kwargs))
