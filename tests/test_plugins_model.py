"""Your own model: model.kind 'module:factory' (found next to the config, from any current
directory) through train, eval, --resume, ensemble, lr-find, search and transfer; the Python API
with a factory, a lambda and a module; bad plugins in one line."""

import json
import os
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch
import yaml

import trainlab
from trainlab.cli import main
from trainlab.config import validate
from trainlab.engine.checkpoints import load_checkpoint
from trainlab.errors import UserError
from trainlab.experiments import evaluate_run
from trainlab.experiments.executors import Job, _ray_run
from trainlab.search.running.driver import search

MODELS = textwrap.dedent(
    """
    import math

    from torch import nn


    def mlp(input_shape, num_classes, hidden=16):
        n = math.prod(input_shape)
        return nn.Sequential(
            nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )


    class Conv(nn.Module):
        def __init__(self, channels, num_classes, hidden):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(channels, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU()
            )
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(hidden, num_classes))

        @classmethod
        def build(cls, input_shape, num_classes, hidden=8):
            return cls(input_shape[0], num_classes, hidden)

        def forward(self, x):
            return self.classifier(self.pool(self.body(x)))


    def raises(input_shape, num_classes):
        raise RuntimeError("no GPU here\\nsecond line")


    def not_a_module(input_shape, num_classes):
        return "a string"


    def seven_logits(input_shape, num_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 7))


    def wrong_input(input_shape, num_classes):
        return nn.Linear(3, num_classes)


    class Doubled(nn.Module):
        def __init__(self, n, num_classes):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(n, 8), nn.ReLU())
            self.fc = nn.Linear(8, num_classes)

        def forward(self, x):
            return 2.0 * self.fc(self.body(x))


    def doubled(input_shape, num_classes):
        return Doubled(math.prod(input_shape), num_classes)


    NOT_CALLABLE = 3
    """
)
BASE = {
    "data": {"name": "digits", "classes": [0, 1, 2, 3, 4]},
    "optim": {"name": "adam", "lr": 1e-2},
    "train": {"epochs": 2, "batch_size": 64, "threads": 1},
}


def config(kind: str, **args) -> dict:
    return {**BASE, "model": {"kind": kind, "args": args}}


@pytest.fixture(scope="module")
def plug(tmp_path_factory):
    """A folder holding the plugin module (h1models.py) and configs next to it."""
    folder = tmp_path_factory.mktemp("plug")
    (folder / "h1models.py").write_text(MODELS)
    for name, cfg in {
        "mlp.yaml": config("h1models:mlp", hidden=12),
        "conv.yaml": {**config("h1models:Conv.build"), "train": {**BASE["train"], "epochs": 6}},
        "target.yaml": {
            **BASE,
            "data": {"name": "digits", "classes": [5, 6, 7, 8, 9], "per_class": 20},
            "train": {"epochs": 2, "batch_size": 16, "threads": 1},
        },
        "search.yaml": {
            **config("h1models:mlp"),
            "train": {"epochs": 1, "batch_size": 64, "threads": 1},
            "search": {
                "strategy": "random",
                "trials": 2,
                "workers": 2,
                "space": {"model.args.hidden": "logint(8, 32)"},
            },
        },
    }.items():
        (folder / name).write_text(yaml.safe_dump(cfg))
    return folder


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """Run from a folder that is not the plugin's (proves the config-folder lookup)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture(scope="module")
def pretrained(plug, tmp_path_factory):
    """A conv plugin run trained from the CLI in another folder."""
    out = tmp_path_factory.mktemp("pre") / "run"
    assert main(["train", str(plug / "conv.yaml"), "--out", str(out)]) == 0
    return out


def cli(capsys, argv):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, (json.loads(cap.out) if rc == 0 and "--json" in argv else cap.out), cap.err


def one_line_error(capsys, argv, field):
    """The error line (train prints the dashboard hint first: that line is not counted)."""
    rc, _, err = cli(capsys, argv)
    assert rc == 2, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("watch it live")]
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in err
    return lines[0]


def test_train_eval_resume_from_another_folder(plug, elsewhere, tmp_path, capsys, interrupt_at):
    whole = trainlab.train(plug / "mlp.yaml", out=tmp_path / "whole")
    assert whole.epochs == 2 and whole.parameters == 64 * 12 + 12 + 12 * 5 + 5
    recorded = json.loads((tmp_path / "whole/plugins.json").read_text())
    assert recorded == {"search_dirs": [str(plug.resolve())]}
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(plug / "mlp.yaml", out=tmp_path / "cut", callbacks=[interrupt_at(2)])
    rc, _, err = cli(capsys, ["train", str(plug / "mlp.yaml"), "--out", "../cut", "--resume"])
    assert rc == 0, err
    rc, res, _ = cli(capsys, ["eval", str(tmp_path / "cut"), "--json"])
    assert rc == 0 and res["accuracy"] == pytest.approx(whole.test_accuracy)
    os.chdir(tmp_path.parent)  # eval needs the run directory only
    rc, res, _ = cli(capsys, ["eval", str(tmp_path / "whole"), "--json"])
    assert rc == 0 and res["accuracy"] == pytest.approx(whole.test_accuracy)


def test_conv_plugin_with_batch_norm_and_its_run(pretrained, capsys):
    saved = yaml.safe_load((pretrained / "config.yaml").read_text())["model"]
    assert saved["kind"] == "h1models:Conv.build" and saved["args"] == {}
    rc, res, _ = cli(capsys, ["eval", str(pretrained), "--json"])
    result = json.loads((pretrained / "result.json").read_text())
    assert rc == 0 and res["accuracy"] == pytest.approx(result["test_accuracy"])
    assert result["test_accuracy"] > 0.4  # 5 classes: better than chance


@pytest.mark.parametrize(
    "kind, field, words",
    [
        ("nosuchmodule:mlp", "model.kind", "cannot import module 'nosuchmodule'"),
        ("h1models:nope", "model.kind", "has no attribute 'nope'"),
        ("h1models:raises", "model.kind", "RuntimeError: no GPU here"),
        ("h1models:not_a_module", "model.kind", "returns a str"),
        ("h1models:NOT_CALLABLE", "model.kind", "not a factory"),
        ("h1models:seven_logits", "model.kind", "shape (2, 7) for 5 classes; expected (2, 5)"),
        ("h1models:wrong_input", "model.kind", "fails on a batch of shape (2, 1, 8, 8)"),
    ],
)
def test_bad_plugins_are_one_line(plug, elsewhere, capsys, kind, field, words):
    argv = ["train", str(plug / "mlp.yaml"), "--set", f"model.kind={kind}", "--set"]
    argv += ["model.args={}", "--out", "never"]
    err = one_line_error(capsys, argv, field)
    assert words in err
    assert not (elsewhere / "never").exists() or not any((elsewhere / "never").iterdir())


def test_unknown_factory_argument_names_model_args(plug, elsewhere, capsys):
    argv = ["train", str(plug / "mlp.yaml"), "--set", "model.args.width=3", "--out", "never"]
    err = one_line_error(capsys, argv, "model.args")
    assert "unexpected keyword argument 'width'" in err


def test_training_crops_the_model_cannot_take_are_one_line(plug, elsewhere, capsys):
    argv = ["train", str(plug / "mlp.yaml"), "--set", "data.augment=[{name: crop, size: 6}]"]
    err = one_line_error(capsys, [*argv, "--out", "never"], "data.augment")
    assert "h1models:mlp" in err and "(2, 1, 6, 6)" in err


def test_ensemble_run_and_command(plug, elsewhere, capsys):
    argv = ["train", str(plug / "mlp.yaml"), "--set", "train.ensemble=2", "--out", "ens"]
    rc, _, err = cli(capsys, [*argv, "--json"])
    assert rc == 0, err
    os.chdir(elsewhere.parent)
    rc, res, _ = cli(capsys, ["ensemble", "cwd/ens/members/0", "cwd/ens/members/1", "--json"])
    assert rc == 0 and res["size"] == 2 and 0.2 < res["test_accuracy"] <= 1
    rc, res, _ = cli(capsys, ["eval", "cwd/ens", "--json"])
    assert rc == 0 and res["accuracy"] == pytest.approx(
        json.loads((elsewhere / "ens/result.json").read_text())["ensemble_test_accuracy"]
    )


def test_lr_find(plug, elsewhere, capsys):
    argv = ["lr-find", str(plug / "conv.yaml"), "--steps", "30", "--out", "lr.png", "--json"]
    rc, res, err = cli(capsys, argv)
    assert rc == 0, err
    assert res["steps"] > 5 and (elsewhere / "lr.png").exists()


def test_search_over_factory_args_in_worker_processes(plug, elsewhere, capsys):
    argv = ["search", str(plug / "search.yaml"), "--out", "st", "--storage", "sqlite:///s.db"]
    rc, res, err = cli(capsys, [*argv, "--json"])
    assert rc == 0, err
    assert res["trials"]["complete"] == 2
    hidden = [
        yaml.safe_load(p.read_text())["model"]["args"]["hidden"]
        for p in sorted((elsewhere / "st/trials").glob("*/config.yaml"))
    ]
    assert len(hidden) == 2 and all(8 <= h <= 32 for h in hidden)
    os.chdir(elsewhere.parent)  # the top-K ensemble rebuilds the trials' models
    argv = ["ensemble", "--study", "search", "--storage", "sqlite:///cwd/s.db", "--top", "2"]
    rc, res, err = cli(capsys, [*argv, "--json"])
    assert rc == 0 and res["size"] == 2, err
    rc, res, err = cli(capsys, ["train", "cwd/st/best.yaml", "--out", "best", "--json"])
    assert rc == 0 and res["epochs"] == 1, err  # best.yaml finds the plugin from its study


def test_a_ray_task_looks_up_plugins_in_the_jobs_folders(tmp_path, elsewhere):
    """What a Ray worker runs (`_ray_run`, here in process with stand-in queues) keeps the
    config's folder of the job: the module sits only there."""
    folder = tmp_path / "ray_plug"
    folder.mkdir()
    (folder / "ray_models.py").write_text(MODELS)
    cfg = validate({**config("ray_models:mlp"), "train": {"epochs": 1}}).model_dump(mode="json")
    job = Job(0, cfg, str(tmp_path / "trial"), report=False, search_dirs=(str(folder),))
    replies = SimpleNamespace(get=lambda timeout: False)
    event = _ray_run(job, SimpleNamespace(put=lambda item: None), replies)
    assert event.kind == "done", event.message
    assert json.loads(event.files["plugins.json"])["search_dirs"] == [str(folder.resolve())]


def test_transfer_list_blocks_head_and_unfreeze(pretrained, plug, elsewhere, capsys):
    target = str(plug / "target.yaml")
    rc, res, _ = cli(capsys, ["transfer", "--from", str(pretrained), "--list-blocks", "--json"])
    assert rc == 0 and res["head"] == "classifier.1" and res["blocks"] == 3
    assert [p["name"] for p in res["parts"]] == ["body", "pool", "classifier"]
    assert [p["unfreeze"] for p in res["parts"]] == ["3", "2", "1"]
    assert res["parts"][0]["parameters"] == 1 * 8 * 9 + 8 + 2 * 8
    rc, res, err = cli(capsys, ["transfer", "--from", str(pretrained), target, "--out", "lin"])
    assert rc == 0, err
    lin = json.loads((elsewhere / "lin/result.json").read_text())
    assert lin["trainable"] == ["classifier.1"] and lin["trainable_parameters"] == 8 * 5 + 5
    assert lin["solver"] == "lbfgs" and lin["cached_features"]  # the head's input, cached
    rc, res, _ = cli(capsys, ["eval", "lin", "--json"])
    assert rc == 0 and res["accuracy"] == pytest.approx(lin["test_accuracy"])
    before, after = (
        load_checkpoint(pretrained / "best.pt"),
        load_checkpoint(elsewhere / "lin/best.pt"),
    )
    for key in ("body.0.weight", "body.1.running_mean", "body.1.running_var"):
        assert torch.equal(before["model"][key], after["model"][key])
    argv = ["transfer", "--from", str(pretrained), target, "--unfreeze", "3", "--out", "ft"]
    rc, _, err = cli(capsys, argv)
    ft = json.loads((elsewhere / "ft/result.json").read_text())
    assert rc == 0 and ft["trainable"] == ["body", "pool", "classifier"], err
    os.chdir(elsewhere.parent)
    rc, res, _ = cli(capsys, ["eval", "cwd/ft", "--json"])
    assert rc == 0 and res["accuracy"] == pytest.approx(ft["test_accuracy"])
    argv = ["transfer", "--from", str(pretrained), target, "--head", "body.0", "--out", "x"]
    assert "is a Conv2d, not an nn.Linear" in one_line_error(capsys, argv, "--head")
    argv = ["transfer", "--from", str(pretrained), target, "--head", "pool.9", "--out", "x"]
    one_line_error(capsys, argv, "--head")


def test_transfer_when_the_logits_are_not_the_heads_output(plug, elsewhere, capsys):
    argv = ["train", str(plug / "mlp.yaml"), "--set", "model.kind=h1models:doubled"]
    assert main([*argv, "--set", "model.args={}", "--out", "pre"]) == 0
    capsys.readouterr()
    target = str(plug / "target.yaml")
    rc, res, err = cli(capsys, ["transfer", "--from", "pre", target, "--out", "t", "--json"])
    assert rc == 0 and res["solver"] == "optim" and not res["cached_features"], err
    assert res["trainable"] == ["fc"]
    assert any("not the output of its head fc" in n for n in res["notes"])
    argv = ["transfer", "--from", "pre", target, "--out", "t2", "--solver", "lbfgs"]
    one_line_error(capsys, argv, "--solver")


def test_python_api_with_a_factory_a_lambda_and_a_module(plug, elsewhere, capsys):
    sys.path.insert(0, str(plug))
    try:
        import h1models
    finally:
        sys.path.remove(str(plug))
    res = trainlab.train(
        {**BASE, "model": {"args": {"hidden": 10}}}, model=h1models.mlp, out="factory"
    )
    saved = yaml.safe_load((elsewhere / "factory/config.yaml").read_text())["model"]
    assert saved["kind"] == "h1models:mlp" and saved["args"] == {"hidden": 10}
    assert evaluate_run("factory")["accuracy"] == pytest.approx(res.test_accuracy)

    res = trainlab.train(BASE, model=lambda shape, n: h1models.mlp(shape, n, 9), out="lambda")
    assert res.epochs == 2 and res.parameters == 64 * 9 + 9 + 9 * 5 + 5
    err = one_line_error(capsys, ["eval", "lambda"], "model.kind")
    assert "cannot be rebuilt" in err and "importable module" in err
    one_line_error(capsys, ["transfer", "--from", "lambda", str(plug / "target.yaml")], "--from")

    res = trainlab.train(BASE, model=h1models.Conv(1, 5, 4), out="module")
    assert res.epochs == 2
    with pytest.raises(UserError, match="cannot be rebuilt"):
        evaluate_run("module")

    with pytest.raises(UserError, match="importable module"):
        search({**config("h1models:mlp"), "search": {"trials": 1}}, model=lambda s, n: None)


def test_a_plugin_found_in_the_current_directory_is_recorded(tmp_path, monkeypatch):
    folder = tmp_path / "here"
    folder.mkdir()
    (folder / "cwd_models.py").write_text(MODELS)
    monkeypatch.chdir(folder)
    trainlab.train({**config("cwd_models:mlp"), "train": {"epochs": 1}}, out=tmp_path / "run")
    recorded = json.loads((tmp_path / "run/plugins.json").read_text())["search_dirs"]
    assert recorded == [str(folder.resolve())]  # eval from elsewhere finds it


def test_a_deleted_plugin_module_is_one_line(plug, elsewhere, tmp_path, capsys):
    (tmp_path / "gone_models.py").write_text(MODELS)
    (tmp_path / "gone.yaml").write_text(yaml.safe_dump(config("gone_models:mlp")))
    assert main(["train", str(tmp_path / "gone.yaml"), "--out", "run"]) == 0
    capsys.readouterr()
    (tmp_path / "gone_models.py").unlink()
    sys.modules.pop("gone_models", None)
    err = one_line_error(capsys, ["eval", "run"], "model.kind")
    assert "cannot import module 'gone_models'" in err and str(tmp_path) in err
