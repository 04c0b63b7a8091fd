"""The trainer and `trainlab train`/`eval` end to end, on the small embedded data sets."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import trainlab
from trainlab.cli import main
from trainlab.engine import Callback, load_run

SPIRALS = (
    "data: {name: spirals}\nmodel: {kind: mlp, width: 32, depth: 2}\n"
    "optim: {name: adam, lr: 1e-2}\ntrain: {epochs: 4, batch_size: 64}\n"
)
RUN_FILES = {
    "config.yaml",
    "metrics.jsonl",
    "steps.jsonl",
    "result.json",
    "last.pt",
    "best.pt",
    "curves.png",
    "env.json",
}


def run_json(capsys, argv):
    rc = main(argv)
    out = capsys.readouterr().out
    return rc, (json.loads(out) if out.strip() else None)


def test_train_json_and_run_directory(write_config, tmp_path, capsys):
    rc, res = run_json(
        capsys, ["train", str(write_config(SPIRALS)), "--out", str(tmp_path / "run"), "--json"]
    )
    assert rc == 0
    for key in (
        "run_dir",
        "epochs",
        "best_epoch",
        "seconds",
        "train_accuracy",
        "val_accuracy",
        "test_accuracy",
        "stopped_reason",
        "advice",
    ):
        assert key in res
    assert res["epochs"] == 4 and res["stopped_reason"] == "completed"
    assert 0.5 < res["test_accuracy"] <= 1.0
    assert RUN_FILES <= {p.name for p in (tmp_path / "run").iterdir()}
    lines = (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    metrics = [json.loads(line) for line in lines]
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4]
    assert {
        "step",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "seconds",
    } <= set(metrics[0])
    assert json.loads((tmp_path / "run/result.json").read_text()) == res
    env = json.loads((tmp_path / "run/env.json").read_text())
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    # the best epoch's weights are the ones tested, and eval reproduces the number
    rc, ev = run_json(capsys, ["eval", str(tmp_path / "run"), "--json"])
    assert rc == 0 and ev["accuracy"] == pytest.approx(res["test_accuracy"])


def test_python_api_matches_and_is_deterministic(tmp_path):
    cfg = {"data": {"name": "spirals"}, "model": {"width": 16}, "train": {"epochs": 2}}
    a = trainlab.train(cfg, out=tmp_path / "a")
    b = trainlab.train(cfg, out=tmp_path / "b")
    assert a.test_accuracy == b.test_accuracy and a.val_accuracy == b.val_accuracy
    run = load_run(tmp_path / "a")
    assert run.config.model.width == 16 and len(run.metrics) == 2
    assert run.result.test_accuracy == a.test_accuracy


def test_existing_out_is_refused_and_untouched(write_config, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    rc = main(["train", str(write_config(SPIRALS)), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "--resume" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["precious.txt"]


def test_out_naming_a_file_is_refused_in_one_line(write_config, tmp_path, capsys):
    somefile = tmp_path / "somefile"
    somefile.write_text("mine")
    rc = main(["train", str(write_config(SPIRALS)), "--out", str(somefile)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--out" in err and "file" in err
    assert "Traceback" not in err and somefile.read_text() == "mine"


def test_resume_without_out_never_takes_another_config_whose_name_starts_alike(
    write_config, tmp_path, capsys, monkeypatch
):
    """`train sp.yaml --resume` looks for runs/sp-<time>, never runs/sp-wide-<time>."""
    monkeypatch.chdir(tmp_path)
    one_epoch = SPIRALS.replace("epochs: 4", "epochs: 1")
    wide = write_config(one_epoch, "sp-wide.yaml")
    assert main(["train", str(wide)]) == 0
    (other,) = (tmp_path / "runs").iterdir()
    assert other.name.startswith("sp-wide-")
    before = sorted(p.name for p in other.iterdir())
    capsys.readouterr()
    rc = main(["train", str(write_config(one_epoch, "sp.yaml")), "--resume"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "no earlier run of" in err and "sp.yaml" in err
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [other.name]
    assert sorted(p.name for p in other.iterdir()) == before


def test_interrupt_then_resume_reaches_the_same_numbers(tmp_path, interrupt_at):
    cfg = {
        "data": {"name": "spirals"},
        "model": {"width": 16, "dropout": 0.2},
        "train": {"epochs": 5},
    }
    full = trainlab.train(cfg, out=tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(cfg, out=tmp_path / "cut", callbacks=[interrupt_at(2)])
    assert json.loads((tmp_path / "cut/result.json").read_text())["stopped_reason"] == "interrupted"
    resumed = trainlab.train(cfg, out=tmp_path / "cut", resume=True)
    assert resumed.test_accuracy == full.test_accuracy
    assert resumed.val_accuracy == full.val_accuracy and resumed.epochs == 5
    a = (tmp_path / "full/metrics.jsonl").read_text().splitlines()
    b = (tmp_path / "cut/metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in a]
    assert strip == [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in b]


def test_sigkill_then_resume(write_config, tmp_path, capsys):
    cfg = write_config(SPIRALS.replace("epochs: 4", "epochs: 40"))
    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainlab", "train", str(cfg), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        metrics = out / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    # a second trainlab into the running run directory: one line, exit 2, nothing written
    before = (out / "metrics.jsonl").read_text()
    assert main(["train", str(cfg), "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--out" in err and "in use" in err and str(proc.pid) in err
    assert len(err.splitlines()) == 1
    assert (out / "metrics.jsonl").read_text().startswith(before)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len((out / "metrics.jsonl").read_text().splitlines())
    assert done < 40, "the run finished before it could be killed"
    resumed = trainlab.train(str(cfg), out=out, resume=True)
    full = trainlab.train(str(cfg), out=tmp_path / "full")
    assert resumed.epochs == full.epochs == 40
    assert resumed.test_accuracy == full.test_accuracy


@pytest.mark.parametrize("ensemble", [False, True])
def test_run_directory_in_use_is_refused(write_config, tmp_path, capsys, ensemble):
    """While a process holds a run directory, `train --resume` into it exits 2 with one line
    and leaves it as it was; the lock is released when the holder finishes."""
    from trainlab.rundir import RunDir

    text = SPIRALS + ("  ensemble: 2\n" if ensemble else "")
    text = text.replace("train: {epochs: 4, batch_size: 64}\n", "train:\n  epochs: 1\n")
    cfg = write_config(text)
    out = tmp_path / "run"
    with RunDir(out).lock():
        assert main(["train", str(cfg), "--out", str(out), "--resume"]) == 2
        err = capsys.readouterr().err.strip()
        assert "in use" in err and str(os.getpid()) in err and len(err.splitlines()) == 1
        assert [p.name for p in out.iterdir()] == [".lock"]
    assert not (out / ".lock").exists()  # released and removed
    (out / ".lock").write_text("12345")  # as left by a process killed with -9
    assert main(["train", str(cfg), "--out", str(out)]) == 0  # a lone .lock is an empty run dir
    assert not (out / ".lock").exists()


def test_early_stopping_restores_best_weights(tmp_path):
    cfg = {
        "data": {"name": "spirals"},
        "model": {"width": 8},
        "optim": {"name": "sgd", "lr": 1e-4},
        "train": {"epochs": 30, "patience": 2},
    }
    res = trainlab.train(cfg, out=tmp_path / "run")
    assert res.stopped_reason == "early_stopping" and res.epochs < 30
    assert res.best_epoch == res.epochs - 2
    run = load_run(tmp_path / "run")
    best = next(m for m in run.metrics if m["epoch"] == res.best_epoch)
    assert res.val_accuracy == best["val_accuracy"]


def test_divergence_stops_at_once(tmp_path):
    cfg = {
        "data": {"name": "spirals"},
        "model": {"width": 64},
        "optim": {"name": "sgd", "lr": 50.0},
        "train": {"epochs": 20},
    }
    res = trainlab.train(cfg, out=tmp_path / "run")
    assert res.stopped_reason == "diverged" and res.epochs == 1
    assert "lr_too_high" in [a["code"] for a in res.advice]


def test_weight_penalty_shrinks_weights(tmp_path):
    base = {"data": {"name": "spirals"}, "model": {"width": 16}, "train": {"epochs": 3}}
    plain = trainlab.train(base, out=tmp_path / "a")
    l2 = trainlab.train(base, out=tmp_path / "b", overrides=["train.l2=0.1"])
    assert plain.test_accuracy is not None

    def norm(path):
        sd = load_run(path).model().state_dict()
        return sum(v.pow(2).sum() for k, v in sd.items() if k.endswith("weight"))

    assert norm(tmp_path / "b") < norm(tmp_path / "a")
    assert l2.stopped_reason == "completed"


@pytest.mark.parametrize(
    "argv, field",
    [
        (["train", "/nonexistent.yaml"], "config"),
        (["train", "{cfg}", "--set", "optim.lr=-1"], "optim.lr"),
        (["train", "{cfg}", "--set", "data.name=imagenet"], "data.name"),
        (["train", "{cfg}", "--set", "model.kind=cnn"], "model.kind"),  # spirals are vectors
        (["train", "{cfg}", "--set", "optim.name=adamax"], "optim.name"),
        (["train", "{cfg}", "--set", "model.colour=1"], "model.colour"),
        (["eval", "/nonexistent-run"], "run"),
        (["train"], "arguments"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(write_config, capsys, argv, field, tmp_path):
    cfg = str(write_config(SPIRALS))
    argv = (
        [a.replace("{cfg}", cfg) for a in argv] + ["--out", str(tmp_path / "never")]
        if argv[0] == "train" and len(argv) > 1
        else argv
    )
    rc = main(argv) if argv != ["train"] else pytest.raises(SystemExit, main, argv).value.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and field in err
    assert "Traceback" not in err
    assert not (tmp_path / "never").exists() or not any((tmp_path / "never").iterdir())


def test_eval_on_new_data_of_the_same_shape(write_config, tmp_path, capsys):
    import numpy as np

    from trainlab.data.sources import spirals

    assert main(["train", str(write_config(SPIRALS)), "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    src = spirals(seed=5)
    np.savez(tmp_path / "new.npz", x=src.x, y=src.y)
    rc, ev = run_json(
        capsys, ["eval", str(tmp_path / "run"), "--data-path", str(tmp_path / "new.npz"), "--json"]
    )
    assert rc == 0 and ev["examples"] == 1500 and ev["accuracy"] > 0.5
    np.savez(tmp_path / "wrong.npz", x=np.zeros((5, 3)), y=np.zeros(5))
    assert main(["eval", str(tmp_path / "run"), "--data-path", str(tmp_path / "wrong.npz")]) == 2
    assert "shape" in capsys.readouterr().err


def test_version_and_module_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "trainlab", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == f"trainlab {trainlab.__version__}"


def test_tensorboard_event_files(tmp_path):
    cfg = {
        "data": {"name": "spirals"},
        "model": {"width": 8},
        "train": {"epochs": 2, "tensorboard": True},
    }
    trainlab.train(cfg, out=tmp_path / "run")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run/tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/step_loss", "train/loss", "val/accuracy", "optim/lr"} <= set(tags)
    assert [e.step for e in events.Scalars("val/accuracy")] == [1, 2]


class LrPerEpoch(Callback):
    """Records the learning rate every optimizer step used, by epoch."""

    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {}

    def on_step_end(self, trainer, loss):  # noqa: ANN001, ANN201
        epoch = trainer.state.epoch + 1
        self.lrs.setdefault(epoch, []).append(trainer.optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize("per", ["step", "epoch"])
@pytest.mark.parametrize(
    "schedule,train_extra",
    [
        ({"name": "step", "milestones": [2, 4]}, {}),
        ({"name": "cosine"}, {}),
        ({"name": "constant"}, {"snapshots": 3}),
    ],
    ids=["step", "cosine", "snapshots"],
)
def test_schedule_per_epoch_or_per_step(tmp_path, per, schedule, train_extra):
    """The lr each step uses follows schedule.per: constant within an epoch with `per: epoch`
    (step decay at its milestones, cosine not stuck at 0), moving every step with `per: step`;
    snapshots are taken at the cycle ends of that same schedule."""
    from trainlab import schedules
    from trainlab.engine.averaging import Snapshots

    epochs, lr = 6, 0.01
    cfg = {
        "data": {"name": "spirals"},
        "model": {"width": 8},
        "optim": {"name": "sgd", "lr": lr},
        "schedule": {**schedule, "per": per},
        "train": {"epochs": epochs, "batch_size": 128, **train_extra},
    }
    seen = LrPerEpoch()
    trainlab.train(cfg, out=tmp_path / "run", callbacks=[seen], curves=False)
    spe = len(seen.lrs[1])
    assert spe > 1 and sorted(seen.lrs) == list(range(1, epochs + 1))
    name = "cosine_restarts" if "snapshots" in train_extra else schedule["name"]
    kwargs = {"cycles": train_extra["snapshots"]} if "snapshots" in train_extra else {}
    if "milestones" in schedule:
        kwargs["milestones"] = schedule["milestones"]
    expected = schedules.lr_values(
        name, epochs=epochs, steps_per_epoch=spe, lr=lr, per=per, **kwargs
    )
    if per == "epoch":
        expected = [[v] * spe for v in expected]  # one lr for the whole epoch
    else:
        expected = [expected[e * spe : (e + 1) * spe] for e in range(epochs)]
    for e in range(epochs):
        assert seen.lrs[e + 1] == pytest.approx(expected[e], rel=1e-12), f"epoch {e + 1}"
    if per == "epoch":
        assert seen.lrs[epochs][-1] > 0.0  # cosine is not at 0 in its last epoch
        if name == "step":
            assert [v[0] for v in seen.lrs.values()] == pytest.approx(
                [lr, lr, lr * 0.1, lr * 0.1, lr * 0.01, lr * 0.01]
            )
    if "snapshots" in train_extra:
        ckpt = torch.load(tmp_path / "run/last.pt", weights_only=True)
        state = ckpt["callbacks"][ckpt["callback_names"].index(Snapshots.__name__)]
        ends = schedules.cycle_ends(epochs, spe, train_extra["snapshots"], per=per)
        assert state["steps"] == ends


class WeightsAfterEachStep(Callback):
    def __init__(self) -> None:
        self.weights: list[list[torch.Tensor]] = []

    def grab(self, trainer) -> None:  # noqa: ANN001
        self.weights.append([p.detach().clone() for p in trainer.model.parameters()])

    def on_train_start(self, trainer):  # noqa: ANN001, ANN201
        self.grab(trainer)

    def on_step_end(self, trainer, loss):  # noqa: ANN001, ANN201
        self.grab(trainer)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_update_ratio_is_the_global_ratio_median_over_the_epochs_steps(tmp_path, weight_decay):
    """metrics.jsonl's update_ratio: ||w_t - w_{t-1}|| / ||w_{t-1}|| over all parameters at once,
    median over the epoch's measured steps; the same with weight decay (two param groups) as
    without (one)."""
    import statistics

    from trainlab.engine.update_ratio import SAMPLES_PER_EPOCH

    cfg = {
        "data": {"name": "spirals"},
        "model": {"width": 16},
        "optim": {"name": "adamw", "lr": 1e-2, "weight_decay": weight_decay},
        "train": {"epochs": 2, "batch_size": 16},
    }
    seen = WeightsAfterEachStep()
    trainlab.train(cfg, out=tmp_path / "run", callbacks=[seen], curves=False)
    records = load_run(tmp_path / "run").metrics
    spe = records[0]["step"]
    stride = max(1, spe // SAMPLES_PER_EPOCH)
    assert stride > 1
    w = seen.weights

    def ratio(t: int) -> float:  # step t (1-based) moved w[t-1] to w[t]
        num = sum(((a - b) ** 2).sum() for a, b in zip(w[t], w[t - 1])) ** 0.5
        return float(num / sum((b**2).sum() for b in w[t - 1]) ** 0.5)

    for e, record in enumerate(records):
        steps = [e * spe + i + 1 for i in range(0, spe, stride)]
        assert record["update_ratio"] == pytest.approx(statistics.median(map(ratio, steps)))
