"""`trainlab lr-find` and `trainlab landscape` from the command line."""

import json

from trainlab.cli import main


def test_lr_find_suggests_an_lr_and_draws_the_curve(tmp_path, capsys, write_config):
    cfg = write_config(
        "data: {name: digits}\nmodel: {kind: mlp, width: 64}\n"
        "optim: {name: momentum}\ntrain: {batch_size: 64}\n"
    )
    rc = main(["lr-find", str(cfg), "--steps", "120", "--out", str(tmp_path / "lr.png"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and (tmp_path / "lr.png").stat().st_size > 10_000
    assert 1e-3 <= out["suggested_lr"] <= 1.0 and out["plot"] == str(tmp_path / "lr.png")


def test_lr_find_refuses_full_batch_optimizers(capsys, write_config):
    cfg = write_config("data: {name: spirals}\noptim: {name: lbfgs}\n")
    assert main(["lr-find", str(cfg)]) == 2
    assert "optim.name" in capsys.readouterr().err


def test_landscape_table_and_picture(tmp_path, capsys):
    rc = main(
        [
            "landscape",
            "--surface",
            "taco",
            "--optimizers",
            "sgd,momentum",
            "--out",
            str(tmp_path / "taco.png"),
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and (tmp_path / "taco.png").exists()
    rows = {r["optimizer"]: r for r in out["rows"]}
    assert rows["momentum"]["steps_to_tol"] < rows["sgd"]["steps_to_tol"]
    assert set(rows["sgd"]) >= {"optimizer", "lr", "steps_to_tol", "final_loss", "path_length"}


def test_landscape_bad_names_exit_2(capsys):
    assert main(["landscape", "--surface", "volcano"]) == 2
    assert "--surface" in capsys.readouterr().err
    assert main(["landscape", "--lr", "sgd:0.1"]) == 2
    assert "--lr" in capsys.readouterr().err
