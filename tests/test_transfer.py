"""Transfer learning: a new head on a pretrained network, frozen blocks (weights and batch-norm
statistics untouched), the linear head fitted on cached features (L-BFGS to convergence, l2 chosen
on validation), fine-tuning with a learning-rate multiplier, bad input refused."""

import json
import shutil

import pytest
import torch
import yaml

import trainlab
from trainlab.cli import main
from trainlab.engine.build import make_optimizer
from trainlab.engine.checkpoints import load_checkpoint
from trainlab.experiments.transfer import HeadOnFeatures, setup_transfer, transfer

PRETRAIN = {
    "data": {"name": "digits", "classes": [0, 1, 2, 3, 4]},
    "model": {"kind": "cnn", "width": 4, "depth": 2, "kernel_size": 3, "norm": "batch"},
    "optim": {"name": "adam", "lr": 1e-2},
    "train": {"epochs": 2, "batch_size": 64, "threads": 1},
}
TARGET = (
    "data: {name: digits, classes: [5, 6, 7, 8, 9], per_class: 20}\n"
    "optim: {name: adam, lr: 1e-2}\n"
    "train: {epochs: 2, batch_size: 16, threads: 1}\n"
)
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    path = tmp_path_factory.mktemp("pre") / "run"
    trainlab.train(PRETRAIN, out=path)
    return path


@pytest.fixture
def target(write_config):
    return str(write_config(TARGET, "target.yaml"))


def run_cli(capsys, argv):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, (json.loads(cap.out) if rc == 0 and "--json" in argv else cap.out), cap.err


def weights(run_dir, name="last.pt"):
    return load_checkpoint(run_dir / name)["model"]


def test_linear_freezes_everything_but_the_head(pretrained, target, tmp_path, capsys):
    out = tmp_path / "linear"
    rc, res, _ = run_cli(
        capsys, ["transfer", "--from", str(pretrained), target, "--out", str(out), "--json"]
    )
    assert rc == 0
    assert res["mode"] == "linear" and res["unfrozen_blocks"] == 0
    assert res["from"] == str(pretrained) and res["trainable"] == ["fc"]
    assert res["hint"]["examples_per_class"] == 20 and res["hint"]["little_data"] is True
    assert json.loads((out / "result.json").read_text()) == res
    before, after = weights(pretrained, "best.pt"), weights(out)
    frozen = [k for k in before if not k.startswith("fc.")]
    assert any(k.endswith("running_mean") for k in frozen)
    for key in frozen:  # weights and batch-norm statistics bit-identical after training
        assert torch.equal(before[key], after[key]), key
    # the head is new (5 outputs for the new classes), fitted by L-BFGS on cached features with
    # the l2 that won on validation; the run is that very fit, and its config says how it was made
    assert after["fc.weight"].shape == (5, before["fc.weight"].shape[1])
    assert res["solver"] == "lbfgs" and res["cached_features"] is True
    assert res["val_accuracy"] == max(res["l2_search"].values())
    assert res["val_accuracy"] == res["l2_search"][f"{res['l2']:g}"]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["optim"]["name"] == "lbfgs" and saved["train"]["l2"] == res["l2"]
    # the run directory evaluates like any other (with the pretrained normalization it saved)
    assert torch.equal(
        load_checkpoint(out / "best.pt")["normalizer"]["mean"],
        load_checkpoint(pretrained / "best.pt")["normalizer"]["mean"],
    )
    rc, ev, _ = run_cli(capsys, ["eval", str(out), "--json"])
    assert rc == 0 and ev["accuracy"] == pytest.approx(res["test_accuracy"])


def test_linear_head_is_solved_to_the_optimum(pretrained, target, tmp_path):
    """The saved head minimizes cross-entropy + l2/2 |W|^2 on the frozen features: the gradient
    at the saved weights is (nearly) zero, which the example's few Adam epochs never reach."""
    res = transfer(pretrained, target, out=tmp_path / "run", curves=False)
    net = trainlab.load_run(tmp_path / "run").network()
    splits = setup_transfer(pretrained, target, solver="optim").splits  # cached features
    f, y = splits.x_train, splits.y_train
    w, b = net.fc.weight.detach().requires_grad_(), net.fc.bias.detach().requires_grad_()
    with torch.no_grad():  # the saved network's own body gives the features the head was fit on
        assert torch.allclose(
            net.eval().features(setup_transfer(pretrained, target, mode="finetune").splits.x_train),
            f,
            atol=1e-5,
        )
    loss = (
        torch.nn.functional.cross_entropy(f @ w.T + b, y) + 0.5 * res.extra["l2"] * w.pow(2).sum()
    )
    loss.backward()
    grad = torch.cat([w.grad.flatten(), b.grad]).abs().max().item()
    assert grad < 1e-3, grad
    # the config's optimizer on the same features stops far from it (2 epochs of batch 16)
    adam = transfer(pretrained, target, out=tmp_path / "adam", curves=False, solver="optim")
    assert adam.extra["cached_features"] is True and adam.train_accuracy < res.train_accuracy


def test_solver_optim_trains_the_head_with_the_config_optimizer(
    pretrained, target, tmp_path, capsys
):
    out = tmp_path / "optim"
    rc, res, _ = run_cli(
        capsys,
        [
            "transfer",
            "--from",
            str(pretrained),
            target,
            "--out",
            str(out),
            "--solver",
            "optim",
            "--json",
        ],
    )
    assert rc == 0 and res["solver"] == "optim" and res["cached_features"] is True
    assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["name"] == "adam"
    losses = [r["train_loss"] for r in map(json.loads, (out / "metrics.jsonl").open())]
    assert len(losses) == 2 and losses[-1] < losses[0]
    before, after = weights(pretrained, "best.pt"), weights(out)
    for key in before:
        if not key.startswith("fc."):
            assert torch.equal(before[key], after[key]), key
    rc, ev, _ = run_cli(capsys, ["eval", str(out), "--json"])
    assert rc == 0 and ev["accuracy"] == pytest.approx(res["test_accuracy"])


def test_augmentation_trains_through_the_frozen_body(pretrained, target, tmp_path, capsys):
    """Augmented inputs change every epoch, so their features cannot be cached: the head trains
    through the (frozen, eval-mode) body with the config's optimizer, and the user is told."""
    aug = ["--set", "data.augment=[flip]"]
    setup = setup_transfer(pretrained, target, overrides=aug[1:])
    assert setup.info["solver"] == "optim" and setup.info["cached_features"] is False
    assert not isinstance(setup.model, HeadOnFeatures)
    assert setup.splits.x_train.dim() == 4 and "data.augment is set" in setup.info["notes"][-1]
    rc, _, err = run_cli(
        capsys,
        [
            "transfer",
            "--from",
            str(pretrained),
            target,
            "--out",
            str(tmp_path / "x"),
            "--solver",
            "lbfgs",
            *aug,
        ],
    )
    assert rc == 2 and "--solver: lbfgs fits the head on cached features" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_finetune_trains_the_last_blocks_with_a_lower_lr(pretrained, target, tmp_path):
    setup = setup_transfer(pretrained, target, mode="finetune", unfreeze=1, lr_mult=0.1)
    opt = make_optimizer(setup.model, setup.config, setup.lr_mult)
    names = {id(p): n for n, p in setup.model.named_parameters()}
    lrs = {names[id(p)]: g["lr"] for g in opt.param_groups for p in g["params"]}
    assert set(lrs) == {n for n, p in setup.model.named_parameters() if p.requires_grad}
    assert {n.split(".")[0] + "." + n.split(".")[1] for n in lrs if n.startswith("blocks")} == {
        "blocks.1"
    }
    for name, lr in lrs.items():
        assert lr == pytest.approx(1e-3 if name.startswith("blocks.1.") else 1e-2), name

    res = trainlab.train(
        setup.config,
        out=tmp_path / "ft",
        splits=setup.splits,
        model=setup.model,
        lr_mult=setup.lr_mult,
    )
    before, after = weights(pretrained, "best.pt"), weights(tmp_path / "ft")
    for key in before:
        if key.startswith("blocks.0."):  # frozen block: weights and BN statistics untouched
            assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["blocks.1.1.weight"], after["blocks.1.1.weight"])
    # the unfrozen block's batch norm trains as usual: its running statistics moved
    assert not torch.equal(before["blocks.1.2.running_mean"], after["blocks.1.2.running_mean"])
    assert res.stopped_reason == "completed"


def test_unfreeze_all_trains_every_parameter(pretrained, target):
    setup = setup_transfer(pretrained, target, mode="finetune", unfreeze="all")
    assert all(p.requires_grad for p in setup.model.parameters())
    assert setup.info["unfrozen_blocks"] == 2 and setup.info["lr_mult"] == 0.1


def test_frozen_batch_norm_stays_in_eval_mode_while_training(pretrained, target):
    setup = setup_transfer(pretrained, target, mode="finetune", unfreeze=1)
    model = setup.model.train()
    model(setup.splits.x_train[:8])
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    frozen = [m for m in setup.model.blocks[0].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert frozen and bns[-1] not in frozen and not any(m.training for m in frozen)
    assert bns[-1].training  # the unfrozen block's batch norm trains as usual


def test_list_blocks(pretrained, capsys):
    rc, res, _ = run_cli(capsys, ["transfer", "--from", str(pretrained), "--list-blocks", "--json"])
    assert rc == 0 and res["blocks"] == 2
    parts = res["parts"]
    assert [p["name"] for p in parts] == ["stem", "blocks.0", "blocks.1", "fc"]
    assert [p["unfreeze"] for p in parts[1:3]] == ["2", "1"]
    assert parts[2]["output_shape"] == [8, 4, 4]  # 8 channels after one 2x2 pooling of 8x8
    total = sum(p.numel() for p in trainlab.load_run(pretrained).model().parameters())
    assert sum(p["parameters"] for p in parts) == total


def _broken_runs(pretrained, tmp_path):
    no_ckpt = tmp_path / "no_ckpt"
    no_ckpt.mkdir()
    shutil.copy(pretrained / "config.yaml", no_ckpt / "config.yaml")
    other = tmp_path / "other_model"
    shutil.copytree(pretrained, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["model"]["width"] = 6
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    garbage = tmp_path / "garbage"
    shutil.copytree(pretrained, garbage)
    (garbage / "best.pt").write_bytes(b"not a checkpoint")
    return {
        "missing": tmp_path / "nowhere",
        "no_ckpt": no_ckpt,
        "other_model": other,
        "garbage": garbage,
    }


@pytest.mark.parametrize(
    "case, extra, words",
    [
        ("missing", [], "--from: "),
        ("no_ckpt", [], "no checkpoint best.pt"),
        ("other_model", [], "does not fit the model"),
        ("garbage", [], "cannot read checkpoint"),
        ("ok", ["--set", "data.resize=[16,16]"], "data.resize: the new images are 16x16"),
        (
            "ok",
            ["--mode", "finetune", "--unfreeze", "3"],
            "--unfreeze: 3 is more than the 2 blocks",
        ),
        ("ok", ["--unfreeze", "two"], "--unfreeze: must be a number of blocks"),
        ("ok", ["--mode", "linear", "--unfreeze", "1"], "--unfreeze: only with --mode finetune"),
        ("ok", ["--mode", "finetune", "--solver", "lbfgs"], "--solver: only with --mode linear"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(
    pretrained, target, tmp_path, capsys, case, extra, words
):
    source = pretrained if case == "ok" else _broken_runs(pretrained, tmp_path)[case]
    out = tmp_path / "out"
    rc, stdout, err = run_cli(
        capsys, ["transfer", "--from", str(source), target, "--out", str(out), "--json", *extra]
    )
    assert rc == 2 and stdout == ""
    assert words in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_resume_refuses_other_transfer_settings(pretrained, target, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["transfer", "--from", str(pretrained), target, "--out", out]) == 0
    before = (tmp_path / "run" / "result.json").read_text()
    capsys.readouterr()
    rc = main(
        [
            "transfer",
            "--from",
            str(pretrained),
            target,
            "--out",
            out,
            "--resume",
            "--mode",
            "finetune",
        ]
    )
    assert (
        rc == 2
        and "--resume: this run was started with other transfer settings" in capsys.readouterr().err
    )
    assert (tmp_path / "run" / "result.json").read_text() == before
