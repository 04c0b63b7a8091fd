"""train.accumulate (gradient accumulation) and train.clip_grad_norm (global-norm clipping)."""

import json

import pytest
import torch

import trainlab
from trainlab.cli import main
from trainlab.config import validate
from trainlab.engine.trainer import Trainer
from trainlab.rundir import RunDir


def spirals(**train):
    # 1080 training points: batches of 60 and 120 split them evenly
    return {
        "data": {"name": "spirals"},
        "model": {"kind": "mlp", "width": 16, "depth": 1},
        "optim": {"name": "sgd", "lr": 0.5},
        "schedule": {"name": "cosine"},
        "train": {"epochs": 1, "log_steps": False, **train},
    }


def weights(run):
    state = torch.load(run / "last.pt", weights_only=True)
    return state["model"], state


def test_accumulate_two_half_batches_equals_one_double_batch(tmp_path):
    trainlab.train(spirals(batch_size=60, accumulate=2), out=tmp_path / "acc", curves=False)
    trainlab.train(spirals(batch_size=120), out=tmp_path / "big", curves=False)
    (a, ckpt_a), (b, ckpt_b) = weights(tmp_path / "acc"), weights(tmp_path / "big")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    # one optimizer and schedule step per group of two minibatches: 1080 / 120 = 9
    assert ckpt_a["state"]["step"] == ckpt_b["state"]["step"] == 9
    assert ckpt_a["scheduler"]["last_epoch"] == ckpt_b["scheduler"]["last_epoch"] == 9


def test_accumulate_partial_last_group_steps_too(tmp_path):
    # 1080 / 100 -> 11 minibatches, groups of 3 -> 4 optimizer steps (the last holds 2)
    cfg = validate(spirals(batch_size=100, accumulate=3))
    trainer = Trainer(cfg, RunDir(tmp_path))
    assert trainer.steps_per_epoch == 4
    trainer.train_epoch(1)
    assert trainer.state.step == 4 and trainer.scheduler.last_epoch == 4


def test_clip_grad_norm_caps_the_sgd_update(tmp_path):
    # one full-size batch, one step: the update is lr * clipped gradient, norm lr * max_norm
    max_norm, lr = 1e-3, 0.5
    cfg = validate(spirals(batch_size=1080, clip_grad_norm=max_norm))
    trainer = Trainer(cfg, RunDir(tmp_path))
    before = [p.detach().clone() for p in trainer.trainable]
    trainer.train_epoch(1)
    delta = torch.cat([(p.detach() - b).flatten() for p, b in zip(trainer.trainable, before)])
    assert delta.norm().item() == pytest.approx(lr * max_norm, rel=1e-4)
    assert trainer.grad_norm() > max_norm  # the pre-clip norm, recorded


def test_clipping_records_grad_norm_and_still_trains(tmp_path):
    cfg = spirals(batch_size=64, clip_grad_norm=0.5)
    cfg["train"]["epochs"] = 3
    trainlab.train(cfg, out=tmp_path / "run", curves=False)
    records = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert all(r["grad_norm"] > 0 for r in records)
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    trainlab.train(spirals(batch_size=64), out=tmp_path / "plain", curves=False)
    plain = json.loads((tmp_path / "plain/metrics.jsonl").read_text().splitlines()[0])
    assert "grad_norm" not in plain  # recorded only when clipping


def test_clipping_keeps_a_huge_lr_from_diverging(tmp_path):
    def run(name, **train):
        cfg = spirals(batch_size=64, **train)
        cfg["optim"]["lr"] = 100.0
        cfg["schedule"] = {"name": "constant"}
        cfg["train"]["epochs"] = 3
        return trainlab.train(cfg, out=tmp_path / name, curves=False).stopped_reason

    assert run("plain") == "diverged"
    assert run("clipped", clip_grad_norm=0.01) == "completed"


@pytest.mark.parametrize(
    ("sets", "start"),
    [
        (["train.accumulate=0"], "train.accumulate: must be an integer >= 1, got 0"),
        (["train.clip_grad_norm=-1"], "train.clip_grad_norm: must be a number > 0"),
        (["train.accumulate=2", "optim.name=lbfgs"], "train.accumulate: lbfgs"),
        (["train.clip_grad_norm=1", "optim.name=newton"], "train.clip_grad_norm: newton"),
    ],
)
def test_bad_values_are_one_line(tmp_path, capsys, sets, start):
    path = tmp_path / "exp.yaml"
    path.write_text("data: {name: spirals}\nmodel: {width: 8}\ntrain: {epochs: 1}\n")
    args = [a for s in sets for a in ("--set", s)]
    code = main(["train", str(path), "--out", str(tmp_path / "run"), *args])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and start in lines[0], lines


def test_interrupt_and_resume_with_accumulate(tmp_path, interrupt_at):
    cfg = spirals(batch_size=100, accumulate=3, clip_grad_norm=1.0)
    cfg["train"]["epochs"] = 4
    cfg["model"]["dropout"] = 0.2
    cfg["train"]["ema"] = 0.9
    full = trainlab.train(cfg, out=tmp_path / "full", curves=False)
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(cfg, out=tmp_path / "cut", callbacks=[interrupt_at(2)], curves=False)
    resumed = trainlab.train(cfg, out=tmp_path / "cut", resume=True, curves=False)
    assert resumed.test_accuracy == full.test_accuracy and resumed.epochs == 4

    def strip(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]

    assert strip("full") == strip("cut")
    assert strip("full")[-1]["step"] == 4 * 4  # 11 minibatches -> 4 steps per epoch
