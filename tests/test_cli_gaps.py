"""The CLI's small lies and gaps (issue 28): the leaderboard says it shows the top 15, a
coarse-to-fine search that cannot zoom says so, a resumed search shows its best trial and says
when nothing is left to run, the dashboard hint prints once, a failed start leaves no empty run
directory, and a flow-style search space is answered with the way that works."""

import io
from types import SimpleNamespace

import pytest
import yaml

import trainlab
from trainlab.cli import main
from trainlab.commands.callbacks import DashboardHint
from trainlab.commands.dashboard import hint
from trainlab.commands.search import PandaDisplay, leaderboard_table
from trainlab.errors import UserError
from trainlab.search.config import SearchConfig
from trainlab.search.running.display import Display
from trainlab.search.running.driver import search

TINY = {
    "data": {"name": "spirals"},
    "model": {"kind": "mlp", "width": 8, "depth": 1},
    "train": {"epochs": 1, "batch_size": 64},
}


def _rows(n):
    return [
        {"rank": i + 1, "trial": i, "value": 0.5, "params": {"optim.lr": 0.01}, "epochs": 2}
        | {"seconds": 1.0, "state": "complete"}
        for i in range(n)
    ]


def _title(n):
    return leaderboard_table({"study": "s", "leaderboard": _rows(n)}).title


def test_the_leaderboard_says_when_it_shows_only_the_top():
    assert _title(18) == "leaderboard of s (top 15 of 18 trials, 2 epochs each)"
    assert _title(15) == "leaderboard of s (15 trials, 2 epochs each)"


def test_coarse_to_fine_under_20_trials_says_it_runs_one_round():
    note = SearchConfig(strategy="coarse-to-fine", trials=12).one_round_note()
    assert note is not None and "12 trials runs one round (plain random search)" in note
    assert SearchConfig(strategy="coarse-to-fine", trials=20).one_round_note() is None
    assert SearchConfig(strategy="coarse-to-fine", trials=12, rounds=1).one_round_note() is None
    assert SearchConfig(strategy="random", trials=12).one_round_note() is None


class Recording(Display):
    def __init__(self):
        self.notes, self.starts = [], []

    def note(self, message):
        self.notes.append(message)

    def start(self, study, total, done, workers, best=None):
        self.starts.append((done, best))


def test_a_resumed_search_starts_with_its_best_and_says_nothing_is_left(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = {**TINY, "search": {"strategy": "coarse-to-fine", "trials": 2}}
    config["search"]["space"] = {"optim.lr": "loguniform(1e-3, 1e-1)"}
    first = Recording()
    result = search(config, display=first, executor="inline", study="c2f", verbose=False)
    assert any("runs one round" in n for n in first.notes)
    assert first.starts == [(0, None)]
    again = Recording()
    search(config, display=again, executor="inline", study="c2f", resume=True)
    best = result.best
    assert again.starts == [(2, (best["trial"], pytest.approx(best["value"])))]
    assert not any("0 runs left" in n for n in again.notes)
    left = "the study has its 2 trials, nothing left to run; raise search.trials"
    assert any(left in n for n in again.notes)


def test_the_live_headline_shows_the_best_trial_given_at_start():
    from rich.console import Console

    display = PandaDisplay(Console(file=io.StringIO()))
    display.start("s", 4, 2, 1, best=(1, 0.5))
    try:
        assert "best: trial 1 (0.5" in display.headline() and "2/4 trials" in display.headline()
    finally:
        display.stop()


def test_the_dashboard_hint_prints_once(capsys):
    callback = DashboardHint("runs")
    trainer = SimpleNamespace(ranks=SimpleNamespace(main=True))  # one process: rank 0
    callback.on_train_start(trainer)
    callback.on_train_start(trainer)  # the next member of an ensemble
    assert capsys.readouterr().err == hint("runs") + "\n"
    assert "trainlab dashboard  (" in hint("runs")  # as the Makefile says it


def test_a_failed_start_leaves_no_empty_run_directory(tmp_path, monkeypatch, write_config, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = write_config("data: {name: spirals}\nmodel: {kind: 'no_such_module:net'}\n")
    assert main(["train", str(cfg)]) == 2
    assert "no_such_module" in capsys.readouterr().err
    assert list((tmp_path / "runs").glob("*")) == []
    kept = tmp_path / "kept"  # a directory that was there before is never removed
    kept.mkdir()
    bad = {**TINY, "model": {"kind": "no_such_module:net"}}
    with pytest.raises(UserError):
        trainlab.train(bad, out=kept, verbose=False)
    assert kept.is_dir()
    with pytest.raises(UserError):
        trainlab.train(bad, out=tmp_path / "new", verbose=False)
    assert not (tmp_path / "new").exists()


def test_a_flow_style_space_says_block_style_works(tmp_path, capsys):
    text = yaml.safe_dump(TINY) + (
        "search:\n  space: {optim.lr: loguniform(1e-4, 1e-1), model.dropout: uniform(0, 0.5)}\n"
    )
    path = tmp_path / "flow.yaml"
    path.write_text(text)
    assert main(["search", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "splits at the comma: write search.space in block style" in err
