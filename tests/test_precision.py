"""train.precision: bf16 autocast trains like fp32 on the CPU, resumes to the same numbers; fp16
needs CUDA (one line without it) and trains through its gradient scaler there."""

import json

import pytest
import torch

import trainlab
from trainlab.cli import main
from trainlab.config import validate
from trainlab.engine.trainer import Trainer
from trainlab.rundir import RunDir

CUDA = torch.cuda.is_available()


def mnist1d_cnn(**train):
    return {
        "data": {"name": "mnist1d"},
        "model": {"kind": "cnn", "width": 16, "depth": 2, "kernel_size": 5},
        "optim": {"name": "adam", "lr": 1e-2},
        "train": {"epochs": 4, "batch_size": 100, "log_steps": False, **train},
    }


def test_bf16_trains_as_well_as_fp32(tmp_path):
    fp32 = trainlab.train(mnist1d_cnn(), out=tmp_path / "fp32", curves=False)
    bf16 = trainlab.train(mnist1d_cnn(precision="bf16"), out=tmp_path / "bf16", curves=False)
    assert fp32.test_accuracy > 0.5  # it learned something: the comparison means something
    assert abs(bf16.test_accuracy - fp32.test_accuracy) < 0.05
    assert bf16.test_accuracy != fp32.test_accuracy or bf16.test_loss != fp32.test_loss


def test_bf16_forward_runs_in_bf16_and_the_loss_and_weights_stay_fp32(tmp_path):
    trainer = Trainer(validate(mnist1d_cnn(precision="bf16")), RunDir(tmp_path))
    x, y = trainer.data.x_train[:8], trainer.data.y_train[:8]
    with trainer.precision.autocast():
        assert trainer.model(x).dtype == torch.bfloat16  # autocast is on
    loss, logits = trainer.loss(x, y)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    trainer.train_epoch(1)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    plain = Trainer(validate(mnist1d_cnn()), RunDir(tmp_path / "fp32"))
    assert plain.loss(x, y)[1].dtype == torch.float32  # fp32: no autocast


def test_bf16_resume_gives_the_uninterrupted_numbers(tmp_path, interrupt_at):
    cfg = mnist1d_cnn(precision="bf16", epochs=3)
    full = trainlab.train(cfg, out=tmp_path / "full", curves=False)
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(cfg, out=tmp_path / "cut", callbacks=[interrupt_at(2)], curves=False)
    resumed = trainlab.train(cfg, out=tmp_path / "cut", resume=True, curves=False)
    assert resumed.test_accuracy == full.test_accuracy and resumed.test_loss == full.test_loss
    metrics = [(tmp_path / d / "metrics.jsonl").read_text().splitlines() for d in ("full", "cut")]
    assert [json.loads(m)["val_loss"] for m in metrics[0]] == [
        json.loads(m)["val_loss"] for m in metrics[1]
    ]


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_fp16_without_cuda_is_one_line(tmp_path, capsys, write_config, device):
    if device == "auto" and CUDA:
        pytest.skip("auto resolves to cuda here")
    path = write_config("data: {name: spirals}\ntrain: {epochs: 1}\n")
    argv = ["train", str(path), "--out", str(tmp_path / "run")]
    code = main([*argv, "--set", "train.precision=fp16", "--set", f"train.device={device}"])
    err = capsys.readouterr().err
    assert code == 2 and "train.precision: fp16 needs" in err.strip().splitlines()[-1]
    assert "Traceback" not in err


def test_mixed_precision_with_a_full_batch_optimizer_is_one_line(tmp_path, capsys, write_config):
    path = write_config("data: {name: spirals}\noptim: {name: lbfgs}\ntrain: {epochs: 1}\n")
    code = main(["train", str(path), "--out", str(tmp_path / "r"), "--set", "train.precision=bf16"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "train.precision: bf16 works with minibatch" in err[-1]


@pytest.mark.skipif(not CUDA, reason="fp16 needs a CUDA device")
def test_fp16_on_cuda_trains_clips_and_resumes(tmp_path, interrupt_at):
    cfg = mnist1d_cnn(precision="fp16", device="cuda", epochs=3, clip_grad_norm=1.0)
    full = trainlab.train(cfg, out=tmp_path / "full", curves=False)
    assert full.test_accuracy > 0.5
    ckpt = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    assert ckpt["precision"]["scale"] > 0  # the scaler's state travels with the checkpoint
    records = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").open()]
    assert all("skipped_steps" in r and r["grad_norm"] is not None for r in records)
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(cfg, out=tmp_path / "cut", callbacks=[interrupt_at(2)], curves=False)
    resumed = trainlab.train(cfg, out=tmp_path / "cut", resume=True, curves=False)
    assert abs(resumed.test_accuracy - full.test_accuracy) < 0.02  # CUDA kernels may differ
