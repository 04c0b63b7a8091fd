"""Progress views (trainlab.report.progress): the Python API shows progress in a terminal or a
notebook and nothing with verbose=False; the CLI's bar is the same view; Optuna's logging is
left as the user set it."""

import subprocess
import sys
import types

import optuna
import pytest

import trainlab
from trainlab.report import progress

SPIRALS = {
    "data": {"name": "spirals"},
    "model": {"kind": "mlp", "width": 8, "depth": 1},
    "train": {"epochs": 2, "batch_size": 64},
}
SEARCH = {**SPIRALS, "search": {"strategy": "random", "trials": 2, "space": {}}}
SEARCH["search"]["space"] = {"optim.lr": "loguniform(1e-3, 1e-1)"}


class Recorded(progress.View):
    """A notebook view that keeps what it was shown (the hook a live-curve view uses)."""

    made: list["Recorded"] = []

    def __init__(self, total, label):
        self.total, self.label, self.updates, self.started, self.stopped = total, label, [], 0, 0
        Recorded.made.append(self)

    def start(self):
        self.started += 1

    def update(self, completed, status="", *, record=None, total=None):
        self.updates.append((completed, status, record, total))

    def stop(self):
        self.stopped += 1


@pytest.fixture
def notebook(monkeypatch):
    """This process seen as a Jupyter kernel, with `Recorded` as the notebook view."""
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    Recorded.made = []
    for kind in progress.KINDS:
        progress.set_notebook_view(kind, Recorded)
    yield Recorded.made
    for kind in progress.KINDS:
        progress.set_notebook_view(kind, None)


def test_train_is_silent_unless_asked(tmp_path, capfd):
    """stderr is not a terminal here: verbose=None shows nothing, as verbose=False."""
    trainlab.train(SPIRALS, out=tmp_path / "a", curves=False)
    trainlab.train(SPIRALS, out=tmp_path / "b", curves=False, verbose=False)
    assert capfd.readouterr() == ("", "")
    trainlab.train(SPIRALS, out=tmp_path / "c", curves=False, verbose=True)
    out, err = capfd.readouterr()
    assert out == "" and "train" in err and "2/2" in err and "val" in err


def test_train_in_a_notebook_feeds_the_notebook_view_each_epoch(tmp_path, capfd, notebook):
    trainlab.train(SPIRALS, out=tmp_path / "a", curves=False)
    (view,) = notebook
    assert (view.total, view.label, view.started, view.stopped) == (2, "train", 1, 1)
    epochs = [u[2]["epoch"] for u in view.updates if u[2] is not None]
    assert epochs == [1, 2] and "val_accuracy" in view.updates[-1][2]
    trainlab.train(SPIRALS, out=tmp_path / "b", curves=False, verbose=False)
    assert len(notebook) == 1 and capfd.readouterr() == ("", "")


def test_the_default_notebook_view_updates_one_display(monkeypatch):
    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    def display(obj, display_id=False):
        shown.append(("display", obj))
        return Handle() if display_id else None

    module = types.ModuleType("IPython.display")
    module.display = display
    monkeypatch.setitem(sys.modules, "IPython.display", module)
    view = progress.NotebookView(3, "train")
    view.start()
    view.update(1, "loss 0.5")
    view.update(2, "loss 0.4")
    assert [kind for kind, _ in shown] == ["display", "update", "update"]
    last = shown[-1][1]
    assert repr(last) == "train 2/3  loss 0.4"
    assert '<progress value="2" max="3">' in last._repr_html_()


def test_shows_follows_verbose_then_the_terminal(monkeypatch):
    assert progress.shows(True) and not progress.shows(False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress.shows(None)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert not progress.shows(None)
    assert type(progress.open_view(3, "x", None)) is progress.View


def _objective(params):
    return -abs(params["x"] - 0.3)


def test_optimize_is_quiet_with_verbose_false_and_leaves_optuna_logging_alone(capfd, caplog):
    def optuna_lines():
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("optuna")]
        caplog.clear()
        return lines

    before = optuna.logging.get_verbosity()
    try:
        optuna.logging.set_verbosity(optuna.logging.INFO)
        trainlab.optimize(_objective, {"x": "uniform(0, 1)"}, "random", 5, verbose=False)
        assert capfd.readouterr() == ("", "") and optuna_lines() == []  # no "Trial 0 finished"
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
        trainlab.optimize(_objective, {"x": "uniform(0, 1)"}, "random", 4, verbose=True)
        out, err = capfd.readouterr()
        assert out == "" and "4/4" in err and "best: trial" in err and optuna_lines() == []
        optuna.logging.set_verbosity(optuna.logging.DEBUG)  # a level the user chose is kept
        trainlab.optimize(_objective, {"x": "uniform(0, 1)"}, "random", 2, verbose=False)
        assert any(line.startswith("Trial 1 finished") for line in optuna_lines())
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(before)


def test_optimize_in_a_notebook_moves_the_trials_view(notebook):
    trainlab.optimize(_objective, {"x": "uniform(0, 1)"}, "random", 3)
    (view,) = notebook
    assert view.total == 3 and view.updates[-1][0] == 3 and view.stopped == 1
    assert [u[2]["trial"] for u in view.updates if u[2]] == [0, 1, 2]


def test_importing_trainlab_changes_no_optuna_logging():
    code = (
        "import optuna, trainlab.api, trainlab.search.running.driver\n"
        "print(optuna.logging.get_verbosity())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(optuna.logging.INFO)


def test_search_config_shows_trials_only_when_asked(tmp_path, monkeypatch, capfd, caplog, notebook):
    monkeypatch.chdir(tmp_path)
    trainlab.search_config(SEARCH, executor="inline", study="quiet", verbose=False)
    assert notebook == [] and capfd.readouterr() == ("", "")
    trainlab.search_config(SEARCH, executor="inline", study="seen")
    (view,) = notebook
    assert view.label == "seen" and view.total == 2 and view.updates[-1][0] == 2
    assert view.updates[-1][1].startswith("best: trial")
    assert [u[2]["trial"] for u in view.updates if u[2]] == [0, 1]
    assert capfd.readouterr() == ("", "")
    assert not [r for r in caplog.records if r.name.startswith("optuna")]  # no Optuna line


def test_the_cli_bar_is_the_reporting_module_s_bar():
    from trainlab.commands.output import ProgressBar

    bar = ProgressBar(3)
    assert isinstance(bar.view, progress.BarView)
    assert bar.callback().view is bar.view
