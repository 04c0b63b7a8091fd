"""Mistakes raised from Python name the Python argument (out, resume=True, overrides); the CLI
keeps its flags (--out, --resume, --set)."""

import pytest

import trainlab
from trainlab.cli import main
from trainlab.errors import UserError, python_wording

SPIRALS = {
    "data": {"name": "spirals"},
    "model": {"kind": "mlp", "width": 8},
    "train": {"epochs": 1},
}
SEARCH = {**SPIRALS, "search": {"trials": 1, "space": {"optim.lr": "loguniform(1e-3, 1e-1)"}}}


def test_the_cli_words_become_python_words():
    assert python_wording("--out: runs/x already exists; pass --resume to continue it") == (
        "out: runs/x already exists; pass resume=True to continue it"
    )
    assert python_wording("--resume: no run directory at x") == "resume=True: no run directory at x"
    assert python_wording("--set a: expected key=value") == "overrides: a: expected key=value"
    assert python_wording("--study: give run directories or --study, not both") == (
        "study: give run directories or study=..., not both"
    )
    assert python_wording("search.strategy: coarse-to-fine, e.g. x --y") == (
        "search.strategy: coarse-to-fine, e.g. x y=..."
    )


def test_train_names_its_arguments(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("x")
    with pytest.raises(UserError, match=r"^out: .* already exists; pass resume=True to cont"):
        trainlab.train(SPIRALS, out=taken, verbose=False)
    with pytest.raises(UserError, match=r"^resume=True: no run directory at "):
        trainlab.train(SPIRALS, out=tmp_path / "absent", resume=True, verbose=False)
    with pytest.raises(UserError, match=r"^overrides: train\.epochs: expected key=value"):
        trainlab.train(SPIRALS, out=tmp_path / "new", overrides=["train.epochs"], verbose=False)
    assert (taken / "mine.txt").read_text() == "x"


def test_the_cli_keeps_its_flags(tmp_path, write_config, capsys):
    cfg = write_config("data: {name: spirals}\ntrain: {epochs: 1}\n")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("x")
    assert main(["train", str(cfg), "--out", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trainlab train: --out: ") and "pass --resume to continue" in err
    assert main(["train", str(cfg), "--set", "train.epochs"]) == 2
    assert capsys.readouterr().err.startswith("trainlab train: --set train.epochs: expected")


def test_the_search_api_names_its_arguments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"^resume=True: no study database .* without resume=True"):
        trainlab.search_config(SEARCH, resume=True, verbose=False)
    with pytest.raises(UserError, match=r"^overrides: x: expected key=value"):
        trainlab.search_config(SEARCH, overrides=["x"], verbose=False)
    with pytest.raises(UserError, match=r"^study: 'a/b' .*is not a usable study name"):
        trainlab.search_config(SEARCH, study="a/b", verbose=False)
