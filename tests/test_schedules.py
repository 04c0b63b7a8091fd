"""trainlab.schedules: parity with torch's schedulers, warmup, restarts, resume, bad input."""

import io
import math
import warnings

import pytest
import torch
from torch.optim import lr_scheduler as L

from trainlab import schedules
from trainlab.errors import UserError

LR0 = 0.5


def _optimizer(lr: float = LR0, kind: str = "sgd", groups: int = 1) -> torch.optim.Optimizer:
    params = [
        {"params": [torch.zeros(2, requires_grad=True)], "lr": lr * (i + 1)} for i in range(groups)
    ]
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def _trace(make, n: int, **opt) -> torch.Tensor:
    """lr of every param group at each of n steps (optimizer.step, then scheduler.step)."""
    optimizer = _optimizer(**opt)
    scheduler = make(optimizer)
    out = []
    for _ in range(n):
        out.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return torch.tensor(out, dtype=torch.float64)


def _close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-13)


W = 50  # warmup steps used in the SequentialLR comparisons below
PARITY = {
    "step-per-epoch": (
        lambda o: schedules.create(
            o,
            name="step",
            epochs=1000,
            steps_per_epoch=7,
            per="epoch",
            milestones=[30, 60, 90, 500],
            gamma=0.5,
        ),
        lambda o: L.MultiStepLR(o, [30, 60, 90, 500], gamma=0.5),
    ),
    "step-equal-spacing": (
        lambda o: schedules.create(
            o,
            name="step",
            epochs=1000,
            steps_per_epoch=1,
            milestones=list(range(100, 1001, 100)),
            gamma=0.7,
        ),
        lambda o: L.StepLR(o, step_size=100, gamma=0.7),
    ),
    "step-per-step": (
        lambda o: schedules.create(
            o, name="step", epochs=10, steps_per_epoch=100, milestones=[3, 6, 8]
        ),
        lambda o: L.MultiStepLR(o, [300, 600, 800], gamma=0.1),
    ),
    "exponential-per-epoch": (
        lambda o: schedules.create(
            o, name="exponential", epochs=1000, steps_per_epoch=3, per="epoch", gamma=0.99
        ),
        lambda o: L.ExponentialLR(o, gamma=0.99),
    ),
    "exponential-per-step": (
        lambda o: schedules.create(
            o, name="exponential", epochs=10, steps_per_epoch=100, gamma=0.6
        ),
        lambda o: L.ExponentialLR(o, gamma=0.6 ** (1 / 100)),
    ),
    "cosine": (
        lambda o: schedules.create(
            o, name="cosine", epochs=10, steps_per_epoch=100, final_lr_fraction=0.1
        ),
        lambda o: L.CosineAnnealingLR(o, T_max=1000, eta_min=0.1 * LR0),
    ),
    "cosine-restarts": (
        lambda o: schedules.create(
            o,
            name="cosine_restarts",
            epochs=20,
            steps_per_epoch=50,
            cycles=4,
            final_lr_fraction=0.2,
        ),
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=250, eta_min=0.2 * LR0),
    ),
    "warmup-cosine": (
        lambda o: schedules.create(
            o, name="cosine", epochs=10, steps_per_epoch=100, warmup_epochs=0.5
        ),
        lambda o: L.SequentialLR(
            o,
            [L.LinearLR(o, 1 / W, 1.0, total_iters=W - 1), L.CosineAnnealingLR(o, T_max=1000 - W)],
            milestones=[W],
        ),
    ),
    "warmup-exponential": (
        lambda o: schedules.create(
            o, name="exponential", epochs=10, steps_per_epoch=100, warmup_epochs=0.5, gamma=0.5
        ),
        lambda o: L.SequentialLR(
            o,
            [L.LinearLR(o, 1 / W, 1.0, total_iters=W - 1), L.ExponentialLR(o, 0.5 ** (1 / 100))],
            milestones=[W],
        ),
    ),
    "warmup-constant": (
        lambda o: schedules.create(
            o, name="constant", epochs=10, steps_per_epoch=100, warmup_epochs=0.5
        ),
        lambda o: L.LinearLR(o, 1 / W, 1.0, total_iters=W - 1),
    ),
}


@pytest.mark.parametrize("case", sorted(PARITY))
def test_matches_torch_for_1000_steps(case):
    ours, theirs = PARITY[case]
    # torch's eta_min is one absolute rate for all groups, ours a fraction of each group's lr0
    groups = 1 if case.startswith("cosine") else 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # SequentialLR's deprecation chatter
        expected = _trace(theirs, 1000, groups=groups)
    _close(_trace(ours, 1000, groups=groups), expected)


def test_constant_is_the_default_and_never_decays():
    lrs = schedules.lr_values("constant", epochs=5, steps_per_epoch=20, lr=0.3)
    assert lrs == [0.3] * 100


def test_inverse_time_formula():
    lrs = schedules.lr_values("inverse_time", epochs=4, steps_per_epoch=10, lr=1.0, decay=0.5)
    for s in (0, 7, 10, 39):
        assert lrs[s] == pytest.approx(1.0 / (1.0 + 0.5 * s / 10))


@pytest.mark.parametrize("name", schedules.SCHEDULES)
def test_warmup_ramps_linearly_to_lr0_for_every_schedule(name):
    spe, warm = 40, 1.5  # 60 warmup steps
    lrs = schedules.lr_values(
        name,
        epochs=6,
        steps_per_epoch=spe,
        lr=2.0,
        warmup_epochs=warm,
        milestones=[3, 5],
        gamma=0.5,
        cycles=2,
    )
    n = 60
    assert lrs[0] == pytest.approx(2.0 / n)
    assert lrs[n - 1] == pytest.approx(2.0)
    diffs = [b - a for a, b in zip(lrs[: n - 1], lrs[1:n])]
    assert all(d == pytest.approx(2.0 / n) for d in diffs)
    # after the warmup the chosen schedule starts at lr0 (its own t = 0)
    assert lrs[n] == pytest.approx(2.0)


def test_warmup_per_epoch_and_per_step_agree_at_epoch_boundaries():
    kw = dict(epochs=12, warmup_epochs=2, final_lr_fraction=0.05)
    per_epoch = schedules.lr_values("cosine", steps_per_epoch=30, per="epoch", **kw)
    per_step = schedules.lr_values("cosine", steps_per_epoch=30, per="step", **kw)
    assert len(per_epoch) == 12 and len(per_step) == 360
    # after the warmup, epoch e per epoch equals step 30*e per step (t is the same)
    for e in range(2, 12):
        assert per_epoch[e] == pytest.approx(per_step[30 * e])


def test_param_groups_keep_their_ratio():
    optimizer = _optimizer(lr=0.1, kind="adam", groups=3)
    scheduler = schedules.create(
        optimizer, name="cosine", epochs=3, steps_per_epoch=10, warmup_epochs=1
    )
    for _ in range(25):
        optimizer.step()
        scheduler.step()
        lrs = [g["lr"] for g in optimizer.param_groups]
        assert lrs[1] == pytest.approx(2 * lrs[0]) and lrs[2] == pytest.approx(3 * lrs[0])
    assert scheduler.base_lrs == pytest.approx([0.1, 0.2, 0.3])


def test_step_default_milestones_at_half_and_three_quarters():
    lrs = schedules.lr_values("step", epochs=8, steps_per_epoch=5, lr=1.0)
    assert lrs[19] == 1.0 and lrs[20] == pytest.approx(0.1)
    assert lrs[29] == pytest.approx(0.1) and lrs[30] == pytest.approx(0.01)


def test_restarts_hit_lr0_at_cycle_starts_and_final_at_cycle_ends():
    epochs, spe, cycles, final = 9, 100, 3, 0.1
    lrs = schedules.lr_values(
        "cosine_restarts",
        epochs=epochs,
        steps_per_epoch=spe,
        lr=1.0,
        cycles=cycles,
        final_lr_fraction=final,
    )
    ends = schedules.cycle_ends(epochs, spe, cycles)
    assert ends == [300, 600, 900]
    starts = [0] + ends[:-1]
    cycle_len = 300
    # the last step of a cycle is within one cosine step of the final rate
    gap = (1 - final) * (1 - math.cos(math.pi / cycle_len)) / 2
    for start, end in zip(starts, ends):
        assert lrs[start] == pytest.approx(1.0)
        cycle = lrs[start:end]
        assert all(a > b for a, b in zip(cycle, cycle[1:]))  # decreasing within a cycle
        assert lrs[end - 1] == pytest.approx(final + gap)
        assert lrs[end - 1] - final < 1e-4
        assert lrs[start + cycle_len // 2] == pytest.approx((1 + final) / 2)
    # past the run's last step the schedule rests at the final rate exactly
    optimizer = _optimizer(lr=1.0)
    scheduler = schedules.create(
        optimizer,
        name="cosine_restarts",
        epochs=epochs,
        steps_per_epoch=spe,
        cycles=cycles,
        final_lr_fraction=final,
    )
    assert scheduler.factor(900) == pytest.approx(final)


def test_cycle_ends_with_warmup_uneven_cycles_and_per_epoch():
    assert schedules.cycle_ends(10, 100, 3) == [333, 667, 1000]
    assert schedules.cycle_ends(10, 100, 3, per="epoch") == [300, 700, 1000]
    assert schedules.cycle_ends(10, 100, 2, warmup_epochs=2) == [600, 1000]
    # the scheduler restarts exactly where cycle_ends says (lr0 on the next step)
    lrs = schedules.lr_values(
        "cosine_restarts", epochs=10, steps_per_epoch=100, lr=1.0, cycles=3, warmup_epochs=1
    )
    ends = schedules.cycle_ends(10, 100, 3, warmup_epochs=1)
    assert ends == [400, 700, 1000]
    for end in ends[:-1]:
        assert lrs[end] == pytest.approx(1.0) and lrs[end - 1] < 1e-4


def test_state_dict_resume_continues_the_same_sequence():
    def make(o):
        return schedules.create(
            o,
            name="cosine_restarts",
            epochs=6,
            steps_per_epoch=50,
            cycles=2,
            warmup_epochs=1,
            final_lr_fraction=0.01,
        )

    full = _trace(make, 300)
    optimizer = _optimizer()
    scheduler = make(optimizer)
    for _ in range(137):
        optimizer.step()
        scheduler.step()
    buffer = io.BytesIO()
    torch.save({"opt": optimizer.state_dict(), "sched": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    optimizer2 = _optimizer()
    scheduler2 = make(optimizer2)
    optimizer2.load_state_dict(saved["opt"])
    scheduler2.load_state_dict(saved["sched"])
    resumed = []
    for _ in range(137, 300):
        resumed.append([g["lr"] for g in optimizer2.param_groups])
        optimizer2.step()
        scheduler2.step()
    _close(torch.tensor(resumed, dtype=torch.float64), full[137:])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(name="linear"), "schedule.name"),
        (dict(name="cosine", epochs=0), "epochs"),
        (dict(name="cosine", steps_per_epoch=-3), "steps_per_epoch"),
        (dict(name="cosine", warmup_epochs=-1), "schedule.warmup_epochs"),
        (dict(name="cosine", warmup_epochs=10), "schedule.warmup_epochs"),
        (dict(name="cosine", warmup_epochs=1.5, per="epoch"), "schedule.warmup_epochs"),
        (dict(name="step", milestones=[2, 11]), "schedule.milestones"),
        (dict(name="step", milestones=[-1]), "schedule.milestones"),
        (dict(name="step", gamma=0), "schedule.gamma"),
        (dict(name="exponential", gamma=1.5), "schedule.gamma"),
        (dict(name="inverse_time", decay=-0.1), "schedule.decay"),
        (dict(name="cosine", final_lr_fraction=float("nan")), "schedule.final_lr_fraction"),
        (dict(name="cosine_restarts", cycles=0), "schedule.cycles"),
        (dict(name="cosine_restarts", cycles=11, per="epoch"), "schedule.cycles"),
        (dict(name="cosine", per="batch"), "schedule.per"),
    ],
)
def test_bad_input_is_a_user_error_naming_the_field(kwargs, field):
    args = dict(epochs=10, steps_per_epoch=4) | kwargs
    with pytest.raises(UserError, match=f"^{field}: "):
        schedules.create(_optimizer(), **args)


def test_cycle_ends_bad_input():
    with pytest.raises(UserError, match="schedule.cycles"):
        schedules.cycle_ends(2, 3, 7)
    with pytest.raises(UserError, match="epochs"):
        schedules.cycle_ends(0, 3, 1)


def test_works_with_trainlab_optimizers():
    from trainlab import optim

    param = torch.zeros(3, requires_grad=True)
    optimizer = optim.Adam([param], lr=0.01)
    scheduler = schedules.create(
        optimizer, name="step", epochs=4, steps_per_epoch=5, milestones=[2], gamma=0.5
    )
    seen = []
    for _ in range(20):
        param.grad = torch.ones(3)
        optimizer.step()
        seen.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    assert seen[9] == pytest.approx(0.01) and seen[10] == pytest.approx(0.005)
