"""Regularization as a user switches it on from the config: weight penalties, dropout,
DropConnect, normalization, stochastic depth, fractional pooling, augmentation and test-time
augmentation; their train-time and test-time behaviour inside the models the trainer builds,
end to end through `trainlab train`, and the one-line errors for bad settings.

The layers themselves (DropConnect, StochasticDepth) and every augmentation op are tested in
test_layers.py and test_augment.py; here they are reached through the config.
"""

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

import trainlab
from trainlab.cli import main
from trainlab.config import ModelConfig, validate
from trainlab.engine.build import WeightPenalty, make_optimizer, split_decay
from trainlab.engine.trainer import Trainer
from trainlab.nn.layers import (
    DropConnectConv1d,
    DropConnectConv2d,
    DropConnectLinear,
    FractionalMaxPool2d,
    StochasticDepth,
)
from trainlab.nn.models import build_model
from trainlab.rundir import RunDir

pytestmark = pytest.mark.usefixtures("seeded_one_thread")


def build(shape: tuple[int, ...], classes: int = 3, **kw) -> nn.Module:
    return build_model(ModelConfig(**kw), shape, classes)


def same_weights_without(
    model: nn.Module, shape: tuple[int, ...], classes: int = 3, **kw
) -> nn.Module:
    """The same architecture with the regularizer off, holding `model`'s weights."""
    plain = build(shape, classes, **kw)
    plain.load_state_dict(model.state_dict())
    return plain.eval()


# --------------------------------------------------------------------------- weight penalties
def test_l2_adds_half_l2_sum_of_squares_with_gradient_l2_w_and_exempts_bias_and_norm():
    model = build((10,), width=16, depth=2, norm="batch")
    cfg = validate({"train": {"l2": 0.3}}).train
    penalty = WeightPenalty(model, cfg)
    decayed, exempt = split_decay(model, cfg.no_decay)
    assert {n for n, _ in decayed} == {"blocks.0.0.weight", "blocks.1.0.weight", "fc.weight"}
    assert {n for n, _ in exempt} == {
        "blocks.0.0.bias",
        "blocks.0.1.weight",
        "blocks.0.1.bias",
        "blocks.1.0.bias",
        "blocks.1.1.weight",
        "blocks.1.1.bias",
        "fc.bias",
    }  # biases and the BatchNorm's gamma and beta
    value = penalty()
    expected = 0.15 * sum(p.pow(2).sum() for _, p in decayed)
    torch.testing.assert_close(value, expected)
    value.backward()
    for name, p in model.named_parameters():
        if name in {n for n, _ in decayed}:
            torch.testing.assert_close(p.grad, 0.3 * p.detach())  # dR/dw = l2 * w
        else:
            assert p.grad is None  # exempt: not in the penalty at all
    # train.no_decay: [] puts biases and norm parameters under the penalty too
    everything = WeightPenalty(model, validate({"train": {"l2": 0.3, "no_decay": []}}).train)
    torch.testing.assert_close(everything(), 0.15 * sum(p.pow(2).sum() for p in model.parameters()))


def test_l1_adds_l1_sum_of_abs_with_gradient_l1_sign_w():
    model = build((6,), width=8, depth=1)
    penalty = WeightPenalty(model, validate({"train": {"l1": 0.01}}).train)
    value = penalty()
    weights = [model.blocks[0][0].weight, model.fc.weight]
    torch.testing.assert_close(value, 0.01 * sum(w.abs().sum() for w in weights))
    value.backward()
    for w in weights:
        torch.testing.assert_close(w.grad, 0.01 * w.detach().sign())
    assert model.fc.bias.grad is None


def test_trainer_loss_is_data_loss_plus_penalty(tmp_path):
    cfg = validate(
        {"data": {"name": "spirals"}, "model": {"width": 8}, "train": {"l2": 0.1, "l1": 0.02}}
    )
    trainer = Trainer(cfg, RunDir(tmp_path / "run"))
    x, y = trainer.data.x_train[:32], trainer.data.y_train[:32]
    loss, logits = trainer.loss(x, y)
    weights = [p for n, p in trainer.model.named_parameters() if n.endswith("weight")]
    expected = (
        F.cross_entropy(logits, y)
        + 0.05 * sum(w.pow(2).sum() for w in weights)
        + 0.02 * sum(w.abs().sum() for w in weights)
    )
    torch.testing.assert_close(loss, expected)


def test_adamw_decays_weights_decoupled_and_leaves_biases_and_norms_alone():
    """AdamW: w <- w - lr * wd * w whatever the gradient; coupled Adam normalizes wd * w instead,
    so its first step moves every weight by about lr, big or small (Loshchilov & Hutter)."""
    model = build((10,), width=16, depth=2, norm="batch")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = make_optimizer(
        model, validate({"optim": {"name": "adamw", "lr": 0.1, "weight_decay": 0.5}})
    )
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    decayed = {n for n, _ in split_decay(model, ["bias", "norm"])[0]}
    for name, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if name in decayed else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor)

    coupled = build((10,), width=16, depth=2)
    w0 = coupled.fc.weight.detach().clone()
    opt = make_optimizer(
        coupled, validate({"optim": {"name": "adam", "lr": 0.1, "weight_decay": 0.5}})
    )
    for p in coupled.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    torch.testing.assert_close(coupled.fc.weight.detach(), w0 - 0.1 * w0.sign(), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------- dropout
def test_dropout_p_is_the_drop_probability_train_mean_kept_eval_identity():
    p = 0.3
    model = build((10,), width=32, depth=2, dropout=p)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(d.p == p for d in drops)  # hidden layer and before fc
    ones = torch.ones(400_000)
    out = drops[0].train()(ones)
    zeros = (out == 0).float().mean().item()
    assert abs(zeros - p) < 0.005  # sd 0.0007
    kept = torch.isclose(out, torch.tensor(1 / (1 - p)))
    assert torch.all((out == 0) | kept)  # inverted: what is kept is scaled by 1 / (1 - p)
    assert abs(out.mean().item() - 1.0) < 0.005  # the train-time mean is preserved
    x = torch.randn(5, 10)
    model.train()
    assert not torch.equal(model(x), model(x))  # random at train time
    model.eval()
    plain = same_weights_without(model, (10,), width=32, depth=2)
    assert torch.equal(model(x), plain(x))  # at test time dropout is the identity


def test_channel_dropout_drops_whole_feature_maps():
    p = 0.5
    model = build((2, 20), kind="cnn", width=8, depth=2, channel_dropout=p)
    layers = [m for m in model.modules() if isinstance(m, nn.Dropout1d)]
    assert len(layers) == 2
    out = layers[0].train()(torch.ones(2000, 8, 20))
    dropped = (out == 0).all(-1)
    kept = (out == 2.0).all(-1)
    assert torch.all(dropped | kept)  # a whole map or nothing
    assert abs(dropped.float().mean().item() - p) < 0.02
    images = build((3, 8, 8), kind="cnn", width=4, depth=2, channel_dropout=p)
    assert any(isinstance(m, nn.Dropout2d) for m in images.modules())
    x = torch.randn(3, 2, 20)
    model.eval()
    assert torch.equal(
        model(x), same_weights_without(model, (2, 20), kind="cnn", width=8, depth=2)(x)
    )


# ------------------------------------------------------------------------------- DropConnect
@pytest.mark.parametrize(
    ("kind", "shape", "conv"),
    [
        ("mlp", (12,), None),
        ("cnn", (1, 16), DropConnectConv1d),
        ("resnet", (3, 8, 8), DropConnectConv2d),
    ],
)
def test_drop_connect_replaces_every_hidden_layer_and_uses_expected_weights_at_eval(
    kind, shape, conv
):
    kw = {"kind": kind, "width": 8, "depth": 2}
    model = build(shape, drop_connect=0.4, **kw)
    hidden = [
        m
        for m in model.modules()
        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d) and m is not model.fc
    ]
    assert hidden and all(
        isinstance(m, DropConnectLinear | DropConnectConv1d | DropConnectConv2d) for m in hidden
    )
    assert all(m.p == 0.4 for m in hidden)
    if conv is not None:
        assert any(isinstance(m, conv) for m in hidden)
    x = torch.randn(4, *shape)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    plain = same_weights_without(model, shape, **kw)  # nn.Linear / nn.Conv with the same weights
    assert torch.equal(model(x), plain(x))


# ----------------------------------------------------------------------------- normalization
def test_batch_norm_updates_running_statistics_only_in_training():
    model = build((1, 16), kind="cnn", width=4, depth=1, norm="batch")
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm1d))
    model.train()
    model(torch.randn(8, 1, 16) + 5)
    mean = bn.running_mean.clone()
    assert mean.abs().sum() > 0
    model.eval()
    x = torch.randn(6, 1, 16)
    out = model(x)
    assert torch.equal(bn.running_mean, mean)  # evaluation does not touch the statistics
    alone = torch.cat([model(x[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(out, alone)  # nor does it depend on the other examples


@pytest.mark.parametrize(
    ("kind", "shape"), [("mlp", (10,)), ("cnn", (2, 12)), ("resnet", (3, 8, 8))]
)
def test_layer_norm_normalizes_each_example_alone_even_in_training(kind, shape):
    model = build(shape, kind=kind, width=8, depth=2, norm="layer").train()
    assert any(isinstance(m, nn.LayerNorm | nn.GroupNorm) for m in model.modules())
    x = torch.randn(5, *shape)
    torch.testing.assert_close(model(x), torch.cat([model(x[i : i + 1]) for i in range(5)]))


# --------------------------------------------------------------------------- stochastic depth
def test_stochastic_depth_grows_linearly_drops_branches_per_example_and_is_full_at_eval():
    shape = (1, 8)
    kw = {"kind": "resnet", "width": 4, "depth": 3}
    model = build(shape, stochastic_depth=0.4, **kw)
    drops = [b.drop for b in model.blocks]
    assert isinstance(drops[0], nn.Identity)  # p = 0 for the first block
    assert [d.p for d in drops[1:]] == pytest.approx([0.2, 0.4])
    assert all(isinstance(d, StochasticDepth) for d in drops[1:])
    seen = {}
    drops[2].register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    model.train()
    x = torch.randn(4000, *shape)
    with torch.no_grad():
        model(x)
    branch, out = seen["inp"].flatten(1), seen["out"].flatten(1)
    live = branch.abs().sum(1) > 0
    dropped = (out[live] == 0).all(1)
    survived = torch.isclose(out[live], branch[live] / 0.6).all(1)
    assert torch.all(dropped | survived)  # per example, all or nothing, kept ones scaled 1/(1-p)
    assert abs(dropped.float().mean().item() - 0.4) < 0.03  # survival 1 - p of the last block
    model.eval()
    x = torch.randn(6, *shape)
    plain = same_weights_without(model, shape, **kw)
    assert torch.equal(model(x), plain(x))  # the whole network at test time
    for kind in ("mlp", "cnn"):  # no residual blocks to drop: refused, not ignored
        with pytest.raises(ValueError, match=r"^model\.stochastic_depth: needs model\.kind resnet"):
            build(shape, kind=kind, stochastic_depth=0.2)


# ---------------------------------------------------------------------- fractional max pooling
@pytest.mark.parametrize("kind", ["cnn", "resnet"])
def test_fractional_max_pooling_shrinks_by_root_two_random_in_training_fixed_at_eval(kind):
    model = build((3, 16, 16), kind=kind, width=4, depth=3, pool="fractional")
    pools = [m for m in model.modules() if isinstance(m, nn.FractionalMaxPool2d)]
    assert len(pools) == 2 and all(isinstance(p, FractionalMaxPool2d) for p in pools)
    x = torch.randn(4, 3, 16, 16)
    sizes = []
    pools[0].register_forward_hook(lambda m, i, o: sizes.append((i[0].shape[-1], o.shape[-1])))
    model.train()
    assert not torch.equal(model(x), model(x))  # a new pseudo-random grid every pass
    assert sizes[0] == (16, 11)  # 16 / sqrt(2), not 16 / 2
    model.eval()
    out = model(x)
    assert torch.equal(out, model(x))  # evaluation is deterministic
    torch.testing.assert_close(out, torch.cat([model(x[i : i + 1]) for i in range(4)]))
    strided = build((3, 16, 16), kind=kind, width=4, depth=3, pool="max")
    assert not any(isinstance(m, nn.FractionalMaxPool2d) for m in strided.modules())


# ------------------------------------------------------------- augmentation through the config
@pytest.fixture(scope="module")
def photos_npz(tmp_path_factory):
    """A small real RGB data set: 16x16 patches of scikit-learn's two photos, labelled by photo."""
    from sklearn.datasets import load_sample_images

    images = torch.from_numpy(np.stack(load_sample_images().images)).permute(0, 3, 1, 2).float()
    small = F.interpolate(images, size=(64, 96), mode="bilinear", antialias=True)  # (2, 3, 64, 96)
    patches = small.unfold(2, 16, 16).unfold(3, 16, 16)  # (2, 3, 4, 6, 16, 16)
    x = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, 16, 16)
    y = torch.arange(2).repeat_interleave(24)
    path = tmp_path_factory.mktemp("photos") / "photos.npz"
    np.savez(path, x=x.numpy().astype(np.uint8), y=y.numpy())
    return path


IMAGE_AUGMENT = ["flip", {"name": "crop", "pad": 2}, "resized_crop", "color_jitter", "pca_color"]


@pytest.mark.parametrize(
    ("data", "augment", "kind"),
    [
        ({"name": "npz"}, IMAGE_AUGMENT, "image"),
        (
            {"name": "digits"},
            [{"name": "crop", "pad": 1}, "resized_crop", {"name": "color_jitter", "saturation": 0}],
            "image",
        ),
        (
            {"name": "mnist1d", "per_class": 20},
            ["flip", "shift", {"name": "scale", "time": 0.1}],
            "signal",
        ),
    ],
)
def test_every_configured_augmentation_runs_on_training_batches(
    tmp_path, photos_npz, data, augment, kind
):
    if data["name"] == "npz":
        data = {**data, "path": str(photos_npz)}
    cfg = validate(
        {"data": {**data, "augment": augment}, "model": {"kind": "cnn", "width": 4, "depth": 1}}
    )
    trainer = Trainer(cfg, RunDir(tmp_path / "run"))
    assert trainer.data.kind == kind
    assert trainer.augment.names == [a if isinstance(a, str) else a["name"] for a in augment]
    x = trainer.data.x_train[:16]
    out = trainer.augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all() and not torch.equal(out, x)
    again = trainer.augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # the epoch's generator decides everything


def run_json(capsys, argv, config):
    """`trainlab train CONFIG ARGV...` in-process: (exit status, --json object, stderr)."""
    rc = main(["train", str(config), *argv])
    captured = capsys.readouterr()
    return rc, (json.loads(captured.out) if captured.out.strip() else None), captured.err


def test_train_with_image_augmentation_reports_tta_beside_test_accuracy(
    tmp_path, photos_npz, capsys, write_config
):
    out = tmp_path / "run"
    rc, res, _ = run_json(
        capsys,
        [
            "--set",
            "data.name=npz",
            "--set",
            f"data.path={photos_npz}",
            "--set",
            "data.augment=[flip, {name: crop, pad: 2}, resized_crop, color_jitter, pca_color]",
            "--set",
            "model.kind=cnn",
            "--set",
            "model.width=4",
            "--set",
            "model.depth=2",
            "--set",
            "model.pool=fractional",
            "--set",
            "model.dropout=0.2",
            "--set",
            "train.tta=ten_crop",
            "--set",
            "train.epochs=2",
            "--set",
            "train.batch_size=16",
            "--out",
            str(out),
            "--json",
        ],
        write_config("train: {seed: 1}\n"),
    )
    assert rc == 0
    assert 0 <= res["test_accuracy"] <= 1 and 0 <= res["tta_test_accuracy"] <= 1
    assert (
        json.loads((out / "result.json").read_text())["tta_test_accuracy"]
        == res["tta_test_accuracy"]
    )
    saved = validate(yaml.safe_load((out / "config.yaml").read_text()))
    assert saved.train.tta == "ten_crop" and len(saved.data.augment) == 5


def test_train_signals_with_shift_scale_and_flip_tta(tmp_path, capsys, write_config):
    rc, res, _ = run_json(
        capsys,
        [
            "--set",
            "data.name=mnist1d",
            "--set",
            "data.per_class=30",
            "--set",
            "data.augment=[shift, scale]",
            "--set",
            "model.kind=resnet",
            "--set",
            "model.width=4",
            "--set",
            "model.depth=2",
            "--set",
            "model.stochastic_depth=0.2",
            "--set",
            "model.norm=batch",
            "--set",
            "train.tta=flip",
            "--set",
            "train.epochs=1",
            "--out",
            str(tmp_path / "run"),
            "--json",
        ],
        write_config("train: {seed: 1}\n"),
    )
    assert rc == 0 and {"test_accuracy", "tta_test_accuracy"} <= set(res)
    assert res["tta_test_accuracy"] is not None


# ------------------------------------------------------------------------------- bad input
SPIRALS = ["--set", "data.name=spirals"]
DIGITS = ["--set", "data.name=digits", "--set", "model.kind=cnn"]
SIGNALS = ["--set", "data.name=mnist1d", "--set", "model.kind=cnn"]


@pytest.mark.parametrize(
    ("base", "setting", "message"),
    [
        (SPIRALS, "model.dropout=1", r"^model\.dropout: must be in \[0, 1\), got 1$"),
        (SPIRALS, "model.dropout=-0.1", r"^model\.dropout: must be in \[0, 1\), got -0.1$"),
        (DIGITS, "model.channel_dropout=1.0", r"^model\.channel_dropout: "),
        (SPIRALS, "model.drop_connect=1.5", r"^model\.drop_connect: "),
        (
            DIGITS,
            "model.stochastic_depth=0.2",
            r"^model\.stochastic_depth: needs model\.kind resnet",
        ),
        (
            DIGITS + ["--set", "model.kind=resnet"],
            "model.stochastic_depth=1",
            r"^model\.stochastic_depth: ",
        ),
        (
            DIGITS,
            "data.augment=[{name: crop, size: 12}]",
            r"^data\.augment\[0\]\.size: crop 12x12 is larger than the image 8x8",
        ),
        (DIGITS, "data.augment=[pca_color]", r"^data\.augment\[0\]: pca_color needs 3-channel"),
        (
            DIGITS,
            "data.augment=[color_jitter]",
            r"^data\.augment\[0\]\.saturation: needs 3-channel",
        ),
        (DIGITS, "data.augment=[shift]", r"^data\.augment\[0\]: 'shift' does not apply to image"),
        (SIGNALS, "model.pool=fractional", r"^model\.pool: fractional max pooling needs images"),
        (SPIRALS, "data.augment=[flip]", r"^data\.augment: augmentation applies to images"),
        (DIGITS, "train.tta=ten_crop", r"^train\.tta: ten_crop needs a training crop"),
        (SPIRALS, "train.tta=flip", r"^train\.tta: flip needs signals or images"),
    ],
)
def test_bad_regularization_settings_are_one_line_exit_2(
    tmp_path, capsys, write_config, base, setting, message
):
    out = tmp_path / "never"
    rc, res, err = run_json(
        capsys,
        [*base, "--set", setting, "--out", str(out), "--json"],
        write_config("train: {epochs: 1}\n"),
    )
    assert rc == 2 and res is None
    lines = err.splitlines()  # exactly one line: no empty line from a progress bar either
    assert len(lines) == 1 and "Traceback" not in err
    assert re.search(message, lines[0].removeprefix("trainlab train: "))
    assert not out.exists() or not any(out.iterdir())
    # the Python API raises the same message as a ValueError
    overrides = [base[i + 1] for i in range(0, len(base), 2)] + [setting]
    with pytest.raises(ValueError, match=message):
        trainlab.train({}, out=tmp_path / "api", overrides=overrides)


def test_overrides_leave_the_callers_config_dict_untouched():
    """Sweeping one technique at a time over a shared base dict (as bench/regularization.py does)
    must not leak one run's `--set` into the next."""
    from trainlab.experiments.single import as_config

    base = {"model": {"kind": "resnet", "width": 8}}
    cfg = as_config(base, ["model.stochastic_depth=0.2", "model.kind=resnet"])
    assert cfg.model.stochastic_depth == 0.2
    assert base == {"model": {"kind": "resnet", "width": 8}}
