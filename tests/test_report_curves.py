"""curves.png (drawn with Pillow by trainlab.report.raster) and what a run records about its
source (env.json's git commit), the fixed work around a run's epochs (issue 30)."""

import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import trainlab
from trainlab.engine.checkpoints import _git_rev_parse, _read_head, git_commit
from trainlab.report.curves import HEIGHT, WIDTH, plot_curves
from trainlab.report.raster import dashed, linear_label, linear_ticks, log_label, log_ticks

SPIRALS = {
    "data": {"name": "spirals"},
    "model": {"kind": "mlp", "width": 16, "depth": 2},
    "optim": {"name": "adam", "lr": 1e-2},
    "train": {"epochs": 3, "batch_size": 64},
}


def metrics_of(epochs: int) -> list[dict]:
    return [
        {
            "epoch": e,
            "step": 10 * e,
            "train_loss": 2.0 / e,
            "train_accuracy": 0.5 + 0.04 * e,
            "val_loss": 2.2 / e,
            "val_accuracy": 0.45 + 0.04 * e,
            "lr": 1e-2 * 0.8**e,
            "update_ratio": 3e-3 / e,
        }
        for e in range(1, epochs + 1)
    ]


def ink(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Pixels that are not white inside box (left, top, right, bottom)."""
    a = np.asarray(image.convert("RGB").crop(box)).astype(int)
    return int((a.sum(axis=2) < 3 * 250).sum())


def test_a_run_writes_curves_png_without_matplotlib(tmp_path):
    """What a user opens after `trainlab train`: curves.png with its three panels drawn, and the
    run did not pay for importing matplotlib (a fresh process, as the CLI is)."""
    script = textwrap.dedent(
        f"""
        import sys, trainlab
        trainlab.train({SPIRALS!r}, out={str(tmp_path / "run")!r}, verbose=False)
        print("matplotlib" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "False"
    image = Image.open(tmp_path / "run" / "curves.png")
    assert image.format == "PNG" and image.width == WIDTH and image.height >= HEIGHT
    third = WIDTH // 3
    for i in range(3):  # each panel has its frame, ticks and data
        assert ink(image, (i * third, 60, (i + 1) * third, HEIGHT - 60)) > 2000


def test_curves_show_the_data_advice_and_survive_missing_values(tmp_path):
    advice = [{"code": "overfitting", "message": "the gap grows " * 30}]
    plot_curves(metrics_of(8), [2.0 / (1 + s / 20) for s in range(80)], tmp_path / "a.png")
    plot_curves(metrics_of(8), [2.0] * 80, tmp_path / "b.png", advice=advice, title="t")
    a, b = Image.open(tmp_path / "a.png"), Image.open(tmp_path / "b.png")
    assert b.height > a.height  # the advice is written under the panels, wrapped
    assert ink(b, (0, HEIGHT - 20, WIDTH, b.height)) > 500
    # a diverged run: infinite and missing losses, no epoch finished, nothing to plot at all
    plot_curves([], [2.3, math.inf, math.nan, None], tmp_path / "c.png", title="diverged")
    plot_curves([], [], tmp_path / "d.png")
    no_val = [dict(m, val_loss=None, val_accuracy=None, update_ratio=None) for m in metrics_of(2)]
    plot_curves(no_val, [1.0, 0.9], tmp_path / "e.png")
    for name in "cde":
        assert Image.open(tmp_path / f"{name}.png").size[0] == WIDTH


def test_ticks_are_round_and_inside_the_limits():
    assert linear_ticks(0.0, 1.0) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert linear_ticks(0.6, 10.4, integer=True) == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert linear_ticks(1.0, 3.0, integer=True) == [1.0, 2.0, 3.0]  # epochs: no half steps
    ticks = linear_ticks(0.0, 1.3)
    assert [linear_label(v, ticks) for v in ticks] == ["0", "0.25", "0.50", "0.75", "1.00", "1.25"]
    assert log_ticks(1e-5, 2.0) == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    assert log_ticks(1.5e-3, 8e-3) == pytest.approx([2e-3, 5e-3])  # less than a decade
    assert log_label(1e-3) == "10\u207b\u00b3" and log_label(2e-3) == "2\u00d710\u207b\u00b3"


def test_dashes_cover_the_line_in_on_and_off_pieces():
    pieces = dashed([(0.0, 0.0), (10.0, 0.0), (10.0, 10.0)], on=3.0, off=2.0)
    drawn = sum(
        math.hypot(x1 - x0, y1 - y0) for p in pieces for (x0, y0), (x1, y1) in zip(p, p[1:])
    )
    assert drawn == pytest.approx(12.0)  # 20 long: 4 whole periods of 3 on, 2 off
    assert pieces[0] == [(0.0, 0.0), (3.0, 0.0)] and pieces[2][0] == (10.0, 0.0)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git program")
def test_git_commit_is_read_from_the_repository_files(tmp_path):
    """env.json's git_commit without starting git: the same answer as `git rev-parse HEAD`, in a
    repository, a linked worktree and after the refs are packed."""

    def git(*args: str, cwd=tmp_path / "repo") -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=cwd,
            check=True,
            capture_output=True,
        )

    (tmp_path / "repo" / "src").mkdir(parents=True)
    git("init", "-q", cwd=tmp_path / "repo")
    (tmp_path / "repo" / "src" / "f.py").write_text("x = 1\n")
    git("add", ".")
    git("commit", "-qm", "one")
    git("worktree", "add", "-q", "-b", "side", str(tmp_path / "wt"))
    (tmp_path / "wt" / "src" / "f.py").write_text("x = 2\n")
    git("commit", "-qam", "two", cwd=tmp_path / "wt")
    for where in (tmp_path / "repo" / "src", tmp_path / "wt" / "src"):
        assert _read_head(where) == _git_rev_parse(where) is not None
    git("pack-refs", "--all")
    assert _read_head(tmp_path / "wt" / "src") == _git_rev_parse(tmp_path / "wt" / "src")
    git("checkout", "-q", "--detach", "HEAD")
    assert _read_head(tmp_path / "repo" / "src") == _git_rev_parse(tmp_path / "repo" / "src")
    assert git_commit() == _git_rev_parse(Path(trainlab.__file__).parent / "engine")


def test_env_json_records_the_commit(tmp_path):
    trainlab.train(SPIRALS, out=tmp_path / "run", curves=False, verbose=False)
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert env["git_commit"] == git_commit()
