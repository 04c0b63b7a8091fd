"""The monitor: each advice rule fires on a tiny model trained into its situation, and a healthy
run gets none; the divergence guard; lr-find on digits."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.divergence import DivergenceGuard
from trainlab.engine.update_ratio import UpdateRatioMeter
from trainlab.errors import UserError
from trainlab.experiments.lr_find import LRFindResult, lr_range_test
from trainlab.report.advice import ADVICE_CODES, Advice, advise
from trainlab.report.lr_find import plot_lr_find
from trainlab.smoothing import smooth

torch.set_num_threads(1)

Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
MakeOptimizer = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


# --- data and models (no global RNGs) --------------------------------------------------------


@functools.cache
def digits(n_train: int | None = None) -> Data:
    """sklearn's 8x8 digits: 1200 train / 597 validation, standardized with train statistics."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order].astype(np.float32), y[order]
    x_train, y_train, x_val, y_val = x[:1200], y[:1200], x[1200:], y[1200:]
    if n_train is not None:
        x_train, y_train = x_train[:n_train], y_train[:n_train]
    mean, std = x_train.mean(0), x_train.std()  # one scale: some pixels are constant

    def prep(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((a - mean) / std)

    return prep(x_train), torch.from_numpy(y_train), prep(x_val), torch.from_numpy(y_val)


@functools.cache
def spirals(n: int = 600, classes: int = 3) -> Data:
    """Interleaved 2-D spirals (a non-linear task), 70/30 split."""
    rng = np.random.default_rng(0)
    per = n // classes
    xs, ys = [], []
    for c in range(classes):
        radius = np.linspace(0.05, 1.0, per)
        theta = np.linspace(4.0 * c, 4.0 * (c + 1), per) + rng.normal(0.0, 0.2, per)
        xs.append(np.c_[radius * np.sin(theta), radius * np.cos(theta)])
        ys.append(np.full(per, c))
    x = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys)
    order = rng.permutation(len(x))
    x, y = torch.from_numpy(x[order]), torch.from_numpy(y[order])
    k = int(0.7 * len(x))
    return x[:k], y[:k], x[k:], y[k:]


@functools.cache
def blobs(n: int = 900, separation: float = 3.5) -> Data:
    """Three overlapping 2-D Gaussian classes (unit variance): no model beats ~94% accuracy."""
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [separation, 0.0], [0.0, separation]])
    y = rng.integers(0, 3, n)
    x = (centers[y] + rng.normal(0.0, 1.0, (n, 2))).astype(np.float32)
    k = int(0.7 * n)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    return x_t[:k], y_t[:k], x_t[k:], y_t[k:]


def mlp(sizes: list[int], seed: int = 0, scale: float = 1.0) -> nn.Sequential:
    """ReLU MLP with PyTorch's default Linear init (U(+-1/sqrt(fan_in))), drawn from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layer = nn.Linear(fan_in, fan_out)
        bound = scale / math.sqrt(fan_in)
        with torch.no_grad():
            layer.weight.uniform_(-bound, bound, generator=gen)
            layer.bias.uniform_(-bound, bound, generator=gen)
        layers += [layer, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


# --- a tiny trainer that produces the same records as trainlab's ------------------------------


def train(
    model: nn.Module,
    data: Data,
    make_optimizer: MakeOptimizer,
    *,
    epochs: int,
    batch_size: int = 32,
    seed: int = 0,
    schedule: Callable[[float], float] | None = None,
    guard: DivergenceGuard | None = None,
) -> tuple[list[dict], list[float], str]:
    """Minibatch training like trainlab's Trainer; returns (records, step losses, stopped_reason).

    As in the trainer: `schedule(t)` (t = epochs elapsed) sets the lr after every step, a record's
    lr is the lr after the epoch's last step, train accuracy is the running accuracy over the
    epoch's minibatches, and the epoch in which the guard fires writes no record.
    update_ratio is measured by the trainer's own UpdateRatioMeter (train/update_ratio.py).
    """
    x_train, y_train, x_val, y_val = data
    optimizer = make_optimizer(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    meter = UpdateRatioMeter(list(model.parameters()), steps_per_epoch)
    records: list[dict] = []
    step_losses: list[float] = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        total, count, correct = 0.0, 0, 0
        for i in range(0, len(order), batch_size):
            index = order[i : i + batch_size]
            logits = model(x_train[index])
            loss = F.cross_entropy(logits, y_train[index])
            correct += int((logits.detach().argmax(1) == y_train[index]).sum())
            optimizer.zero_grad()
            loss.backward()
            meter.before_step(i // batch_size)
            optimizer.step()
            meter.after_step()
            if schedule is not None:
                for group in optimizer.param_groups:
                    group["lr"] = schedule((len(step_losses) + 1) / steps_per_epoch)
            value = loss.item()
            step_losses.append(value)
            total, count = total + value, count + 1
            if guard is not None and guard.update(value):
                return records, step_losses, "diverged"
        model.eval()
        with torch.no_grad():
            val_logits = model(x_val)
            val_loss = F.cross_entropy(val_logits, y_val).item()
            val_accuracy = (val_logits.argmax(1) == y_val).float().mean().item()
        records.append(
            {
                "epoch": epoch,
                "step": len(step_losses),
                "train_loss": total / count,
                "train_accuracy": correct / len(order),
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - start,
                "update_ratio": meter.epoch_value(),
            }
        )
    return records, step_losses, "completed"


def adam(lr: float) -> MakeOptimizer:
    return lambda params: torch.optim.Adam(params, lr=lr)


def sgd(lr: float, momentum: float = 0.0) -> MakeOptimizer:
    return lambda params: torch.optim.SGD(params, lr=lr, momentum=momentum)


def codes(advice: list[Advice]) -> set[str]:
    assert all(a.code in ADVICE_CODES and a.message for a in advice)
    return {a.code for a in advice}


# --- the divergence guard and smoothing ---------------------------------------------------------


def test_guard_fires_on_nan_and_on_growth_but_not_on_one_spike():
    guard = DivergenceGuard()
    assert not guard.update(2.3) and guard.initial_loss == pytest.approx(2.3)
    assert not guard.update(1.0)
    assert guard.update(float("nan")) and guard.diverged_at == 3
    assert guard.update(0.5), "stays diverged"

    spiky = DivergenceGuard(factor=3.0)
    assert not any(spiky.update(v) for v in [2.0] + [0.5] * 20 + [9.0] + [0.5] * 5)

    growing = DivergenceGuard(factor=3.0)
    fired = [growing.update(2.0 * 1.5**k) for k in range(20)]
    assert fired.index(True) < 10 and growing.diverged_at == fired.index(True) + 1


def test_advise_sees_an_explosion_the_trainer_did_not_stop_and_copes_with_missing_data():
    exploding = [2.3, 2.0, 1.8] + [1.8 * 2.0**k for k in range(1, 12)]
    advice = advise([], exploding, num_classes=10)
    assert codes(advice) == {"lr_too_high"} and advice[0].epoch == 1
    assert advise([], [], num_classes=10) == []
    no_val = [
        {
            "epoch": e,
            "step": 10 * e,
            "train_loss": 1.0 / e,
            "train_accuracy": None,
            "val_loss": None,
            "val_accuracy": None,
            "lr": 0.1,
            "seconds": 0.1,
        }
        for e in range(1, 6)
    ]
    assert advise(no_val, [2.3] + [1.0 / (1 + k / 10) for k in range(49)], num_classes=10) == []


def test_guard_warmup_averages_the_initial_loss():
    guard = DivergenceGuard(factor=3.0, warmup_steps=4)
    for value in (1.0, 3.0, 2.0, 2.0):
        assert not guard.update(value)
    assert guard.initial_loss == pytest.approx(2.0)
    guard.update(2.0)
    assert guard.initial_loss == pytest.approx(2.0)
    with pytest.raises(UserError, match="diverge_factor"):
        DivergenceGuard(factor=0.5)
    with pytest.raises(UserError, match="warmup_steps"):
        DivergenceGuard(warmup_steps=-1)


def test_smooth_is_a_debiased_moving_average():
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    out = smooth([1.0, 3.0], beta=0.5)
    assert out == pytest.approx([1.0, (0.25 * 1.0 + 0.5 * 3.0) / 0.75])
    with_nan = smooth([1.0, float("inf"), 1.0])
    assert math.isnan(with_nan[1]) and with_nan[2] == pytest.approx(1.0)


# --- each rule, trained into its situation --------------------------------------------------


def test_lr_10_with_sgd_diverges_and_advises_a_lower_lr():
    guard = DivergenceGuard()
    records, losses, reason = train(mlp([64, 128, 10]), digits(), sgd(10.0), epochs=3, guard=guard)
    assert reason == "diverged" and guard.diverged_at is not None and guard.diverged_at <= 10
    assert records == [], "the run stops at once, in epoch 1"
    advice = advise(records, losses, num_classes=10, diverged=True)
    assert codes(advice) == {"lr_too_high"}
    assert "too high" in advice[0].message and advice[0].epoch == 1


def test_lr_1e_7_stalls_and_advises_a_higher_lr():
    records, losses, _ = train(mlp([64, 128, 10]), digits(), sgd(1e-7), epochs=4)
    found = codes(advise(records, losses, num_classes=10))
    assert "lr_too_low" in found and "update_ratio" in found
    assert "underfitting" not in found, "a flat loss is the lr, not the model size"


def test_weights_scaled_x10_at_init_is_a_bad_init():
    records, losses, _ = train(mlp([64, 128, 10], scale=10.0), digits(), adam(1e-3), epochs=4)
    advice = advise(records, losses, num_classes=10)
    assert "bad_init" in codes(advice)
    assert "initialization" in next(a.message for a in advice if a.code == "bad_init")


def test_big_mlp_on_50_examples_overfits():
    records, losses, _ = train(
        mlp([64, 512, 512, 10]), digits(n_train=50), adam(1e-3), epochs=25, batch_size=10
    )
    found = codes(advise(records, losses, num_classes=10))
    assert "overfitting" in found and "underfitting" not in found


def test_linear_model_on_spirals_underfits():
    records, losses, _ = train(mlp([2, 3]), spirals(), adam(0.05), epochs=15)
    found = codes(advise(records, losses, num_classes=3))
    assert "underfitting" in found and "overfitting" not in found
    # the same data with a hidden layer fits: no underfitting
    records, losses, _ = train(mlp([2, 64, 64, 3]), spirals(), adam(0.01), epochs=15)
    assert "underfitting" not in codes(advise(records, losses, num_classes=3))


def test_update_ratio_far_from_1e_3_both_ways():
    records, losses, _ = train(mlp([64, 128, 10]), digits(), sgd(1e-4), epochs=3)
    low = next(a for a in advise(records, losses, num_classes=10) if a.code == "update_ratio")
    assert "raise the learning rate" in low.message

    for seed in range(3):  # a loss flat under huge steps is not "lr too low"
        records, losses, _ = train(mlp([64, 128, 10], seed), digits(), adam(0.1), epochs=3)
        advice = advise(records, losses, num_classes=10)
        high = [a for a in advice if a.code == "update_ratio"]
        assert high and "lower the learning rate" in high[0].message
        assert "lr_too_low" not in codes(advice)
    # an explicit per-epoch list replaces the records' values
    quiet = advise(records, losses, num_classes=10, update_ratios=[1e-3] * len(records))
    assert "update_ratio" not in codes(quiet)


def test_plateau_with_constant_lr_suggests_decay():
    # Adam at lr 0.2 reaches the noise floor of overlapping blobs in 4 epochs and bounces there
    records, losses, _ = train(mlp([2, 32, 3]), blobs(), adam(0.2), epochs=15)
    advice = advise(records, losses, num_classes=3, schedule="constant")
    decay = [a for a in advice if a.code == "try_decay"]
    assert decay and "cosine" in decay[0].message and decay[0].epoch is not None
    assert decay[0].epoch <= 8, "the plateau starts early in the run"
    # with a step schedule already in place the constant-lr advice is not given
    assert "try_decay" not in codes(advise(records, losses, num_classes=3, schedule="cosine"))


@pytest.mark.parametrize("seed", [0, 1])
def test_plateau_broken_late_by_step_decay_suggests_decaying_earlier(seed):
    # plain SGD at lr 1 with batches of 8 on overlapping blobs bounces on a noise floor from
    # epoch 2-4; the x0.1 decay after epoch 10 removes the noise and the loss drops ~30-38%
    # (seeds 0-5 measured; the advice fires for all of them)
    def step_decay(t: float) -> float:
        return 1.0 if t < 10 else 0.1

    records, losses, _ = train(
        mlp([2, 32, 3], seed=seed),
        blobs(),
        sgd(1.0),
        epochs=12,
        batch_size=8,
        seed=seed,
        schedule=step_decay,
    )
    for milestones in ([10.0], []):  # from the config, or read from the records' lr
        advice = advise(records, losses, num_classes=3, schedule="step", milestones=milestones)
        decay = [a for a in advice if a.code == "try_decay"]
        assert decay and "decay earlier" in decay[0].message and decay[0].epoch < 10


@pytest.mark.parametrize("make_optimizer", [adam(1e-3), sgd(0.05, momentum=0.9)])
def test_healthy_digits_run_gets_no_advice(make_optimizer):
    records, losses, reason = train(
        mlp([64, 128, 10]), digits(), make_optimizer, epochs=15, guard=DivergenceGuard()
    )
    assert reason == "completed" and records[-1]["val_accuracy"] > 0.95
    assert advise(records, losses, num_classes=10) == []


# --- lr-find ----------------------------------------------------------------------------------


def _digit_batches(batch_size: int = 32, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y, _, _ = digits()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return [
        (x[order[i : i + batch_size]], y[order[i : i + batch_size]])
        for i in range(0, len(x) - batch_size + 1, batch_size)
    ]


def _val_accuracy_after(lr: float, epochs: int = 3) -> float:
    records, _, _ = train(mlp([64, 128, 10], seed=1), digits(), sgd(lr, 0.9), epochs=epochs)
    return records[-1]["val_accuracy"]


def test_lr_find_suggests_a_sensible_lr_and_restores_the_weights(tmp_path):
    model = mlp([64, 128, 10], seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_range_test(
        model, _digit_batches(), lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9)
    )
    assert isinstance(result, LRFindResult)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert result.stopped_early and len(result.lrs) < 200
    assert result.lrs == sorted(result.lrs) and result.lrs[0] == pytest.approx(1e-7)
    assert result.smoothed == pytest.approx(smooth(result.losses, 0.98))
    assert result.suggested_lr is not None and 1e-3 <= result.suggested_lr <= 1.0
    assert _val_accuracy_after(result.suggested_lr) > _val_accuracy_after(1e-5) + 0.2

    path = tmp_path / "lr_find.png"
    plot_lr_find(result, path)
    assert path.stat().st_size > 1000


def test_lr_find_replays_a_one_shot_iterator_and_keeps_group_ratios():
    model = mlp([64, 32, 10], seed=2)
    seen: list[tuple[float, float]] = []

    class RecordingSGD(torch.optim.SGD):
        def step(self, closure=None):  # type: ignore[override]
            seen.append((self.param_groups[0]["lr"], self.param_groups[1]["lr"]))
            return super().step(closure)

    def make(params, lr):  # the first layer at a tenth of the lr, as fine-tuning does
        params = list(params)
        return RecordingSGD([{"params": params[:2], "lr": lr / 10}, {"params": params[2:]}], lr=lr)

    batches = iter(_digit_batches()[:5])  # one pass only: must be replayed
    result = lr_range_test(model, batches, make, start_lr=1e-6, end_lr=1e-3, steps=30)
    assert len(result.lrs) == 30 and not result.stopped_early
    assert result.lrs[-1] == pytest.approx(1e-3) and result.lrs[1] / result.lrs[0] == pytest.approx(
        1e3 ** (1 / 29)
    )
    assert [b for _, b in seen] == pytest.approx(result.lrs)
    assert [a for a, _ in seen] == pytest.approx([lr / 10 for lr in result.lrs])


def test_lr_find_refuses_bad_ranges():
    model = mlp([64, 10])
    make = lambda params, lr: torch.optim.SGD(params, lr=lr)  # noqa: E731
    with pytest.raises(UserError, match="end_lr"):
        lr_range_test(model, _digit_batches(), make, start_lr=1.0, end_lr=0.1)
    with pytest.raises(UserError, match="steps"):
        lr_range_test(model, _digit_batches(), make, steps=3)


def test_low_accuracy_with_a_rising_loss_is_a_high_lr_not_underfitting():
    # SGD momentum at lr 0.5 on digits bounces: accuracy low, loss back up after epoch 4
    losses = [2.63, 2.23, 1.88, 1.84, 2.18, 1.89, 1.85, 2.29]
    accs = [0.33, 0.35, 0.39, 0.43, 0.21, 0.26, 0.30, 0.22]
    records = [
        {
            "epoch": i + 1,
            "step": 10 * (i + 1),
            "train_loss": loss,
            "train_accuracy": acc,
            "val_loss": loss,
            "val_accuracy": acc + 0.05,
            "lr": 0.5,
        }
        for i, (loss, acc) in enumerate(zip(losses, accs))
    ]
    found = codes(advise(records, [2.3] * 80, num_classes=10))
    assert "lr_too_high" in found and "underfitting" not in found


def test_guard_state_round_trip_checks_a_resumed_run_like_an_uninterrupted_one():
    losses = [2.3, 2.0, 1.2, 0.5, 0.1, 0.05, 0.2, 0.3, 0.4, 0.45]
    whole = DivergenceGuard(factor=3.0)
    cut = DivergenceGuard(factor=3.0)
    for v in losses[:5]:
        whole.update(v)
        cut.update(v)
    resumed = DivergenceGuard(factor=3.0)
    resumed.load_state_dict(cut.state_dict())
    for v in losses[5:]:
        assert resumed.update(v) == whole.update(v)
    assert resumed.state_dict() == whole.state_dict()
    assert resumed.initial_loss == 2.3, "the reference is the first loss, not the resumed one"
    # a checkpoint from before the full state keeps its initial loss as the reference
    old = DivergenceGuard(factor=3.0)
    old.load_state_dict({"initial_loss": 2.3})
    assert not old.update(0.05) and old.initial_loss == 2.3


def test_curves_smooth_long_noisy_runs_and_leave_short_full_batch_runs_alone():
    from trainlab.report.curves import smoothing_for

    assert smoothing_for(40) == 0.0  # 40 full-batch epochs: the raw curve is the curve
    assert smoothing_for(250) == pytest.approx(0.8)  # memory ~5 steps = 2% of the run
    assert smoothing_for(100_000) == 0.98  # memory capped at ~50 steps
    assert smooth([3.0, 2.0, 1.0], smoothing_for(3)) == [3.0, 2.0, 1.0]


def test_advice_uses_the_runs_divergence_factor():
    """A loss that settles at 4x its initial value is diverged for the default factor 3, not for a
    run that set train.diverge_factor: 5 (whose trainer did not stop it)."""
    losses = [2.0] * 3 + [8.0] * 40
    assert "lr_too_high" in codes(advise([], losses, num_classes=10))
    assert "lr_too_high" not in codes(advise([], losses, num_classes=10, diverge_factor=5.0))


def test_trainer_gives_the_advice_what_the_run_did(tmp_path, monkeypatch):
    """With train.snapshots the advice hears of the cosine restarts that ran (not the configured
    constant schedule) and of the run's diverge_factor; step decay without milestones of its
    default milestones."""
    import trainlab
    from trainlab.experiments import single

    seen: list[dict] = []
    real = single.advise
    monkeypatch.setattr(single, "advise", lambda *a, **kw: seen.append(kw) or real(*a, **kw))
    base = {"data": {"name": "spirals"}, "model": {"width": 8}}
    trainlab.train(
        {**base, "train": {"epochs": 4, "snapshots": 2, "diverge_factor": 7.0}},
        out=tmp_path / "snap",
        curves=False,
    )
    assert seen[-1]["schedule"] == "cosine_restarts" and seen[-1]["diverge_factor"] == 7.0
    trainlab.train(
        {**base, "schedule": {"name": "step"}, "train": {"epochs": 4}},
        out=tmp_path / "step",
        curves=False,
    )
    assert seen[-1]["schedule"] == "step" and seen[-1]["milestones"] == [2.0, 3.0]
