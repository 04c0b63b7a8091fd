"""Issue 27's cases through the CLI: nothing crashes, nothing hangs, nothing is silently wrong.
Each mistake is one line on stderr naming the option and exit status 2; no password printed."""

import importlib
import json
import sys

import numpy as np
import pytest
import torch

import trainlab
from trainlab.cli import main
from trainlab.errors import UserError

SEARCH = """data: {name: spirals}
model: {kind: mlp, width: 8, depth: 1}
train: {epochs: 1, batch_size: 32, log_steps: false}
search: {strategy: random, trials: 1, space: {optim.lr: "loguniform(1e-3, 1e-1)"}}
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def one_line(capsys, code: int, command: str, start: str) -> str:
    """The one stderr line of a refused command (exit status 2)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith(f"trainlab {command}: {start}"), lines
    return lines[0]


# ------------------------------------------------------------------------------ storage URLs
@pytest.mark.parametrize(
    "url, secret",
    [
        ("postgresql://u:p@ss@127.0.0.1:1/db", ("p@ss", "ss@")),  # the driver split at the 1st @
        ("postgresql://u:se:cr@et@127.0.0.1:1/db", ("se:cr", "cr@", "et@")),
        ("postgresql://u:pa/ss@127.0.0.1:1/db", ("pa/ss", "ss@")),
    ],
)
def test_a_password_with_at_is_never_printed(tmp_path, capsys, url, secret):
    (tmp_path / "s.yaml").write_text(SEARCH)
    line = one_line(capsys, main(["search", "s.yaml", "--storage", url]), "search", "--storage:")
    assert "u:****@127.0.0.1:1/db" in line and "127.0.0.1" in line, line
    assert not any(part in line for part in secret), line
    assert not (tmp_path / "runs").exists()


def test_an_unclosed_bracket_in_the_host_is_one_line(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(SEARCH)
    code = main(["search", "s.yaml", "--storage", "postgresql://u:p@ss@[::1/db"])
    line = one_line(capsys, code, "search", "--storage:")
    assert "unclosed '['" in line and "p@ss" not in line and "ss@" not in line, line


# ------------------------------------------------------------------------------- study names
@pytest.mark.parametrize("name", ["x" * 300, "a;rm -rf x", "$(x)", "two words", "a.b", "é"])
@pytest.mark.parametrize("journal", [False, True])
def test_an_unusable_study_name_is_refused_before_anything_is_made(tmp_path, capsys, name, journal):
    (tmp_path / "s.yaml").write_text(SEARCH)
    storage = ["--storage", f"journal:///{tmp_path}/j.log"] if journal else []
    code = main(["search", "s.yaml", "--study", name, *storage])
    line = one_line(capsys, code, "search", "--study:")
    assert "letters, digits, - and _, at most 100 characters" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_a_config_name_that_is_no_study_name_asks_for_study(tmp_path, capsys):
    (tmp_path / "my exp;1.yaml").write_text(SEARCH)
    line = one_line(capsys, main(["search", "my exp;1.yaml"]), "search", "--study:")
    assert "'my exp;1'" in line and line.endswith("pass --study NAME"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my exp;1.yaml"]


def test_search_hints_quote_their_paths(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(SEARCH)
    db = tmp_path / "my db" / "s.db"
    code = main(["search", "s.yaml", "--out", "my study", "--storage", f"sqlite:///{db}"])
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = (out.out + out.err).splitlines()
    best = next(line for line in lines if line.startswith("best config: "))
    assert best.endswith("(trainlab train 'my study/best.yaml')"), best
    watch = next(line for line in lines if line.startswith("watch it live"))
    assert f"trainlab dashboard '{db.parent}'" in watch, watch


# ------------------------------------------------------------------------------ lr-find --out
TRAIN = """data: {name: spirals}
model: {kind: mlp, width: 8, depth: 1}
train: {epochs: 1, batch_size: 32, log_steps: false}
"""


def lr_find(*args: str) -> int:
    return main(["lr-find", "c.yaml", "--steps", "10", *args])


@pytest.mark.parametrize("out", ["x.txt", "d", "d/", "f/x.png"])
def test_lr_find_refuses_a_plot_it_cannot_write(tmp_path, capsys, out):
    (tmp_path / "c.yaml").write_text(TRAIN)
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("a file, not a folder")
    line = one_line(capsys, lr_find("--out", out), "lr-find", "--out:")
    assert out.rstrip("/").split("/")[0] in line, line
    assert not (tmp_path / "x.txt").exists() and not list((tmp_path / "d").iterdir())


def test_lr_find_out_without_a_suffix_writes_and_reports_name_png(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(TRAIN)
    assert lr_find("--out", "plots/lr", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["plot"] == "plots/lr.png" and (tmp_path / "plots/lr.png").stat().st_size > 0


# ------------------------------------------------------------------ compare, strict --json
@pytest.mark.parametrize("margin", ["nan", "inf", "-inf"])
def test_compare_refuses_a_margin_that_is_no_number(tmp_path, capsys, margin):
    (tmp_path / "a.yaml").write_text(TRAIN)
    (tmp_path / "b.yaml").write_text(TRAIN.replace("width: 8", "width: 4"))
    code = main(["compare", "a.yaml", "b.yaml", f"--margin={margin}", "--json"])
    line = one_line(capsys, code, "compare", "--margin:")
    assert "finite" in line and not (tmp_path / "runs").exists(), line


def test_compare_names_the_divergence_of_a_config(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text(TRAIN + "optim: {name: sgd, lr: 1.0e+8}\n")
    (tmp_path / "b.yaml").write_text(TRAIN)
    code = main(["compare", "a.yaml", "b.yaml", "--seeds", "2", "--out", "cmp"])
    line = one_line(capsys, code, "compare", "a.yaml: every run diverged")
    assert "(stopped_reason: diverged); no test_accuracy to compare" in line, line


def test_json_output_is_strict_json(capsys):
    from trainlab.commands.output import emit_json

    emit_json({"a": float("nan"), "b": [1.5, float("inf")], "c": {"d": (float("-inf"),)}})
    text = capsys.readouterr().out
    assert json.loads(text, parse_constant=pytest.fail) == {
        "a": None,
        "b": [1.5, None],
        "c": {"d": [None]},
    }


# --------------------------------------------------------------------------- user code prints
PLUGIN = """
import numpy as np
import torch
from torch import nn

print("importing the plugin")


def model(input_shape, num_classes):
    print("building the model")
    return Loud(input_shape[0], num_classes)


class Loud(nn.Linear):
    def forward(self, x):
        print("forward")
        return super().forward(x)


def data():
    print("making the data")
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 3, 64)
"""


@pytest.fixture
def plugin_module(tmp_path):
    """A plugin module `NAME.py` next to the configs; forgotten by sys.modules afterwards."""
    names = []

    def write(name: str, text: str) -> str:
        (tmp_path / f"{name}.py").write_text(text)
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def test_a_plugin_that_prints_leaves_json_alone(tmp_path, capsys, plugin_module):
    mod = plugin_module("loud_faults_plugin", PLUGIN)
    config = f'data: {{name: "{mod}:data"}}\nmodel: {{kind: "{mod}:model"}}\n'
    (tmp_path / "c.yaml").write_text(config + "train: {epochs: 1, batch_size: 32}\n")
    assert main(["train", "c.yaml", "--out", "run", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["epochs"] == 1, out.out  # exactly one JSON object
    for said in ("importing the plugin", "building the model", "making the data", "forward"):
        assert said in out.err


def test_a_trial_that_prints_leaves_search_json_alone(tmp_path, capfd, plugin_module):
    mod = plugin_module("loud_faults_search", PLUGIN)
    config = f'data: {{name: "{mod}:data"}}\nmodel: {{kind: "{mod}:model"}}\n'
    search = 'search: {strategy: random, trials: 1, space: {optim.lr: "loguniform(1e-3, 1e-1)"}}'
    (tmp_path / "s.yaml").write_text(config + "train: {epochs: 1, batch_size: 32}\n" + search)
    assert main(["search", "s.yaml", "--json"]) == 0  # the trial runs in a worker process
    out = capfd.readouterr()
    assert json.loads(out.out)["trials"]["complete"] == 1, out.out
    assert "forward" in out.err


# --------------------------------------------------------------- plugin mistakes the checks miss
MISTAKES = """
import torch
from torch import nn


def linear(input_shape, num_classes):
    return nn.Linear(input_shape[0], num_classes)


def frozen(input_shape, num_classes):
    return nn.Linear(input_shape[0], num_classes).requires_grad_(False)


class IntLogits(nn.Linear):
    def forward(self, x):
        return super().forward(x).long()


def int_logits(input_shape, num_classes):
    return IntLogits(input_shape[0], num_classes)
"""


def train_plugin(tmp_path, kind: str) -> int:
    config = f'data: {{name: spirals}}\nmodel: {{kind: "{kind}"}}\n'
    (tmp_path / "c.yaml").write_text(config + "train: {epochs: 1, batch_size: 32}\n")
    return main(["train", "c.yaml", "--out", "run", "--json"])


@pytest.mark.parametrize(
    "factory, said",
    [
        ("frozen", "model has no trainable parameters"),
        ("int_logits", "returns logits of dtype torch.int64; they must be floating point"),
    ],
)
def test_a_model_that_cannot_train_is_one_line(tmp_path, capsys, plugin_module, factory, said):
    mod = plugin_module("faults_mistakes", MISTAKES)
    line = one_line(capsys, train_plugin(tmp_path, f"{mod}:{factory}"), "train", "model.kind:")
    assert said in line, line


def test_a_plugin_that_changes_the_default_dtype_has_it_restored(tmp_path, capsys, plugin_module):
    text = "import torch\n\ntorch.set_default_dtype(torch.float64)\n" + MISTAKES
    kind = plugin_module("faults_float64", text) + ":linear"
    try:
        assert train_plugin(tmp_path, kind) == 0
        assert torch.get_default_dtype() == torch.float32
    finally:
        torch.set_default_dtype(torch.float32)
    out = capsys.readouterr()
    assert json.loads(out.out)["epochs"] == 1
    warned = [line for line in out.err.splitlines() if "default dtype" in line]
    assert len(warned) == 1 and warned[0].startswith("trainlab train: warning: model.kind:")
    assert "changed torch's default dtype to torch.float64" in warned[0], warned


# ------------------------------------------------------------------ a loaded model, raw inputs
def raw_digits(path) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits as they come (pixels 0..16), saved to `path` for eval --data-path."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.images[:, None].astype(np.float32), d.target.astype(np.int64)
    np.savez(path, x=x, y=y)
    return torch.from_numpy(x), torch.from_numpy(y)


def eval_accuracy(capsys, *argv: str) -> float:
    assert main(["eval", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["accuracy"]


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).double().mean().item()


DIGITS = {
    "data": {"name": "digits"},
    "model": {"kind": "mlp", "width": 32},
    "optim": {"lr": 0.05},
    "train": {"epochs": 3},
}


def test_a_loaded_model_predicts_raw_inputs_as_eval_does(tmp_path, capsys):
    x, y = raw_digits(tmp_path / "raw.npz")
    result = trainlab.train(DIGITS, out="run", curves=False)
    run = trainlab.load_run("run")
    model = run.model()
    assert accuracy(model, x, y) == pytest.approx(
        eval_accuracy(capsys, "run", "--data-path", "raw.npz")
    )
    assert accuracy(model, x, y) > 0.85
    # the normalizer is part of the module: buffers saved with it, moved with it
    state = model.state_dict()
    assert torch.equal(state["mean"], run.normalizer().mean) and "std" in state
    assert model.to(torch.float64).mean.dtype == torch.float64
    # the bare network takes inputs normalized as in training, as run.splits() gives them
    splits = run.splits()
    bare = accuracy(run.network(), splits.x_test, splits.y_test)
    assert bare == pytest.approx(result.test_accuracy)


# ------------------------------------------------------------ a model given as a Python object
NETS = """
from torch import nn


class MyNet(nn.Sequential):
    def __init__(self, classes=10):
        super().__init__(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, classes))


def make(input_shape, num_classes):
    return MyNet(num_classes)
"""


def test_a_model_given_as_an_object_loads_into_the_users_module(
    tmp_path, capsys, plugin_module, monkeypatch
):
    mod = plugin_module("faults_nets", NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    nets = importlib.import_module(mod)
    result = trainlab.train(DIGITS, model=nets.MyNet(), out="run", curves=False)
    line = one_line(capsys, main(["eval", "run"]), "eval", "model.kind:")
    assert "load_run(RUN).model(module=MyNet())" in line and "--model module:factory" in line
    # from Python: the weights and the normalizer in the user's own module
    x, y = raw_digits(tmp_path / "raw.npz")
    model = trainlab.load_run("run").model(module=nets.MyNet())
    assert isinstance(model.network, nets.MyNet) and not model.training
    raw = eval_accuracy(capsys, "run", "--model", f"{mod}:make", "--data-path", "raw.npz")
    assert accuracy(model, x, y) == pytest.approx(raw) and raw > 0.85
    # from the CLI: a factory importable by name, called as factory(input_shape, num_classes)
    assert eval_accuracy(capsys, "run", "--model", f"{mod}:make") == pytest.approx(
        result.test_accuracy
    )
    assert trainlab.evaluate("run", model=nets.MyNet())["accuracy"] == pytest.approx(
        result.test_accuracy
    )
    with pytest.raises(UserError, match="does not fit the module given"):
        trainlab.load_run("run").model(module=nets.MyNet(3))
    line = one_line(capsys, main(["eval", "run", "--model", f"{mod}:nowhere"]), "eval", "--model:")
    assert "nowhere" in line, line
    one_line(capsys, main(["eval", "run", "--model", "make"]), "eval", "--model: give a factory")


# ------------------------------------------------------------ an --out that cannot be written
@pytest.fixture
def read_only_mount(tmp_path):
    """A read-only bind mount (root ignores permissions, not a read-only file system); skipped
    where the test may not mount."""
    import subprocess

    target = tmp_path / "ro"
    target.mkdir()
    mount = ["mount", "--bind", "-o", "ro", str(target), str(target)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot make a read-only bind mount here")
    yield target
    subprocess.run(["umount", str(target)], check=True)


OUT_COMMANDS = {
    "train": ["train", "s.yaml"],
    "search": ["search", "s.yaml"],
    "compare": ["compare", "s.yaml", "t.yaml", "--seeds", "2"],
    "lr-find": ["lr-find", "s.yaml"],
}


@pytest.mark.parametrize("command", OUT_COMMANDS)
@pytest.mark.parametrize(
    "out, said",
    [
        ("afile", "afile is a file; choose a directory"),
        ("afile/x.png", "afile is a file"),
        ("/sys/trainlab-out/x.png", "(Operation not permitted)"),
        ("/proc/trainlab-out/x.png", "/proc"),
        ("ro/x.png", "(Read-only file system)"),
    ],
)
def test_an_out_that_cannot_be_written_is_one_line(tmp_path, capsys, request, command, out, said):
    if out.startswith("ro/"):
        request.getfixturevalue("read_only_mount")
    if command == "lr-find" and out == "afile":
        pytest.skip("lr-find's --out is a file: it writes afile.png (the pinned suffix rule)")
    (tmp_path / "s.yaml").write_text(SEARCH)
    (tmp_path / "t.yaml").write_text(SEARCH.replace("width: 8", "width: 4"))
    (tmp_path / "afile").write_text("mine\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    line = one_line(capsys, main([*OUT_COMMANDS[command], "--out", out]), command, "--out:")
    assert said in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing made
    assert (tmp_path / "afile").read_text() == "mine\n"  # nothing lost


# ------------------------------------------------------------------------ the disk fills up
FULL_DISK_RUN = """data: {name: spirals}
model: {kind: mlp, width: 16, dropout: 0.2}
train: {epochs: 4, batch_size: 64}
"""


def torch_save_fails_on_the_second_last_pt(monkeypatch) -> None:
    """torch.save as it fails on a full disk: part of the file written, then a C++ RuntimeError
    raised while handling an iostream error."""
    real, calls = torch.save, []

    def save(obj, f, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(str(f))
        if sum(".last.pt." in c for c in calls) == 2 and ".last.pt." in str(f):
            with open(f, "wb") as part:
                part.write(b"PK\x03\x04 partial")
            try:
                raise RuntimeError("basic_ios::clear: iostream error")
            except RuntimeError:
                raise RuntimeError(
                    "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"
                ) from None
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def metrics_append_fails_at_epoch_3(monkeypatch) -> None:
    """Appending epoch 3's metrics line finds no space (ENOSPC) after part of it is written."""
    import errno

    from trainlab.rundir import RunDir

    real = RunDir.append_jsonl

    def append(self, name, rows):  # noqa: ANN001, ANN202
        if name == "metrics.jsonl" and rows and rows[0]["epoch"] == 3:
            with open(self / name, "a") as f:
                f.write(json.dumps(rows[0])[:10])
            raise OSError(errno.ENOSPC, "No space left on device", str(self / name))
        return real(self, name, rows)

    monkeypatch.setattr(RunDir, "append_jsonl", append)


def metrics_of(path) -> list[dict]:
    lines = (path / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]


@pytest.mark.parametrize(
    "fault", [torch_save_fails_on_the_second_last_pt, metrics_append_fails_at_epoch_3]
)
def test_a_full_disk_is_one_line_and_resume_gives_the_same_numbers(tmp_path, capsys, fault):
    (tmp_path / "c.yaml").write_text(FULL_DISK_RUN)
    with pytest.MonkeyPatch.context() as mp:
        fault(mp)
        code = main(["train", "c.yaml", "--out", "cut"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]  # after the progress of the epochs it did
    assert line.startswith("trainlab train: --out: cannot write cut/"), line
    assert "on the disk mounted at /" in line and "continue with --resume" in line, line
    assert "MiB free" in line and "cut" in line, line
    assert not (tmp_path / "cut/result.json").exists()
    assert main(["train", "c.yaml", "--out", "cut", "--resume", "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert main(["train", "c.yaml", "--out", "full", "--json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert resumed["epochs"] == full["epochs"] == 4
    assert resumed["test_accuracy"] == full["test_accuracy"]
    assert resumed["test_loss"] == full["test_loss"]
    assert metrics_of(tmp_path / "cut") == metrics_of(tmp_path / "full")


# ------------------------------------------------------------ a run that fails before writing
def test_a_run_that_fails_before_writing_leaves_no_empty_folder(tmp_path, capsys, plugin_module):
    kind = plugin_module("faults_empty", MISTAKES) + ":frozen"  # a UserError from the factory
    (tmp_path / "c.yaml").write_text(f'data: {{name: spirals}}\nmodel: {{kind: "{kind}"}}\n')
    one_line(capsys, main(["train", "c.yaml"]), "train", "model.kind:")
    assert list((tmp_path / "runs").iterdir()) == []  # no runs/c-<time>/
    one_line(capsys, main(["train", "c.yaml", "--out", "new"]), "train", "model.kind:")
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()  # a folder that existed before is never removed
    one_line(capsys, main(["train", "c.yaml", "--out", "mine"]), "train", "model.kind:")
    assert (tmp_path / "mine").is_dir()
