"""Babysitting the learning process: rules that turn a run's curves into advice.

The lecture's checks (CS231n lecture 7, "monitoring"): a loss that explodes means the learning rate
is too high, a flat loss means it is too low (or a bug), the loss at init should be log(C) for a
C-class softmax classifier, a growing train/val gap means overfitting, no gap with a low train
accuracy means underfitting, the update/weight ratio should be about 1e-3, and a loss plateau is
where learning-rate decay helps.

Every threshold below was fixed from measured runs (MLPs on sklearn digits, spirals and
overlapping blobs; Adam and SGD; good and bad settings; 3 seeds each): healthy runs (Adam lr 1e-3,
Adam lr 5e-4, SGD momentum lr 0.05 and 0.02 on digits for 15 epochs, an MLP on spirals) get no
advice. Each rule is a small function; `advise` runs them in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trainlab.divergence import DIVERGE_FACTOR, DivergenceGuard
from trainlab.errors import UserError

ADVICE_CODES = (
    "lr_too_high",
    "lr_too_low",
    "bad_init",
    "overfitting",
    "underfitting",
    "update_ratio",
    "try_decay",
)

# --- lr_too_low -------------------------------------------------------------------------------
# "The loss hardly moves in the first epochs": the relative drop of the loss over the first
# LOW_LR_EPOCHS epochs (fraction of the initial loss). Measured on digits over 3 epochs (3 seeds):
# SGD lr 1e-7 -2..0%, 1e-4 -2..0.2%, 1e-3 -0.3..2%; healthy runs 80-98%; a linear model on
# spirals 19-35%.
LOW_LR_EPOCHS = 3
LOW_LR_MIN_DROP = 0.05
# Loss averages over this many steps at both ends of that window (steps), against minibatch noise.
LOW_LR_AVG_STEPS = 5
# A model that is already this accurate in epoch 1 (fraction) has nothing left to learn quickly.
LOW_LR_DONE_ACCURACY = 0.99

# --- bad_init ---------------------------------------------------------------------------------
# The first step's loss over log(C) (dimensionless). Default PyTorch inits with standardized inputs
# measured 1.00-1.07 (linear, MLPs, deep MLP, CNN+BN); raw 0..16 pixels 1.3-3.3; weights x10: 9-14.
# Only too-high losses are flagged: a lower one at step 0 is a pretrained model, not a bad init.
BAD_INIT_RATIO = 1.5

# --- overfitting / underfitting ---------------------------------------------------------------
# Train minus validation accuracy (fraction), averaged over the last OVERFIT_LAST_EPOCHS epochs,
# that counts as overfitting: at init both accuracies are at chance, so a gap this size has grown.
# Healthy digits runs end at 0.015-0.025; a 512x512 MLP on 50 digits at 0.16-0.18.
OVERFIT_GAP = 0.10
OVERFIT_LAST_EPOCHS = 2
# Accuracy (fraction) under which the best train and validation accuracy of the last third of the
# epochs are "low" when train is not above validation by more than UNDERFIT_MAX_GAP (fraction, on
# their means there), and the most that best train accuracy may exceed the earlier epochs' best
# (fraction) to count as "stays low" rather than "still learning". A linear model on 3 spirals
# stays at 0.51 (validation 0.56); healthy digits runs pass 0.95 by epoch 5. Validation must be low
# too, and best values are used: the running train accuracy of a model with dropout and a high lr
# (trainer, Adam lr 0.05 on digits) ends at 0.88 after 0.92 with validation 0.89 after 0.95.
UNDERFIT_ACCURACY = 0.90
UNDERFIT_MAX_GAP = 0.05
UNDERFIT_MAX_GAIN = 0.03
# Low accuracy while the train loss of the last third of the epochs sits this factor above its
# earlier minimum is a bouncing, too-high learning rate, not a too-small model (digits MLP with
# SGD momentum lr 0.5: loss 1.84 at epoch 4, then 1.85-2.29 with accuracy 0.2-0.4).
UNDERFIT_LOSS_RISE = 1.1
MIN_EPOCHS_FOR_TRENDS = 3  # epochs: fewer than this is too short to call a trend

# --- update_ratio -----------------------------------------------------------------------------
# The lecture's update/weight ratio of about 1e-3 (as the trainer records it: global norms
# ||w_t - w_{t-1}|| / ||w_{t-1}|| over all trainable parameters, median over an epoch's steps;
# train/update_ratio.py), and how far off (a factor, either way) the run's median over epochs may
# be. Measured (tests/test_monitor.py's loop, MLP 64-128-10 on digits, 3 seeds): healthy runs
# (Adam 1e-3 and 5e-4, SGD momentum 0.05 and 0.02, 15 epochs) have medians 1.1e-3 to 1.5e-3,
# single epochs 5e-4 to 2.2e-2; SGD lr 1e-4: 1.4e-5; Adam lr 0.05: 2.1e-2 to 2.4e-2; Adam lr 0.1:
# 2.9e-2 to 3.1e-2. The healthy batch-norm CNN of examples/mnist1d-cnn.yaml (Adam 3e-3) runs at
# 1.4e-2 in epoch 1, falling to 5e-3 by epoch 6, so the band is 20x either way: a rule of thumb
# should not tell a good run to slow down 10x.
UPDATE_RATIO_TARGET = 1e-3
UPDATE_RATIO_FAR = 20.0

# --- try_decay --------------------------------------------------------------------------------
# A plateau: over at least PLATEAU_EPOCHS epochs the epoch train loss falls by less than
# PLATEAU_MAX_RATE per epoch (relative, from a least-squares line through log(loss), so one lucky
# epoch on a noisy plateau does not hide it). Healthy digits runs still fall 11-12.5% per epoch
# at epoch 15; Adam lr 0.2 on overlapping blobs sits on a noisy floor (-0.6..+1% per epoch); SGD
# momentum lr 0.2 on digits with 30% wrong labels creeps at 1.3-2.8%, and a x0.1 decay there
# drops it 58-62%. A plateau at the data's irreducible loss (blobs with Adam lr 0.01) looks the
# same from the curves and gets the advice too; decay wins little there.
PLATEAU_EPOCHS = 4
PLATEAU_MAX_RATE = 0.03
# The plateau starts at the first epoch within this factor of the plateau's median loss.
PLATEAU_LEVEL = 1.1
# Below this train loss (nats; 0.02 = the correct class gets ~98% probability) a flat curve is a
# converged run: nothing left for decay to win.
CONVERGED_LOSS = 0.02
# An lr drop between epochs by at least this factor counts as a step decay (dimensionless: 0.5
# catches x0.1 and x0.5 steps, not one epoch of a smooth cosine or exponential schedule).
DECAY_LR_FACTOR = 0.5
# A "sudden drop" after a decay: the best of the two epochs after it is at least this fraction
# below the plateau's mean loss. Measured after x0.1: 12-26% (blobs, Adam lr 0.2), 58-62% (digits
# with 30% wrong labels, SGD momentum lr 0.2), 94-100% (digits, Adam lr 0.05).
SUDDEN_DROP = 0.2


@dataclass
class Advice:
    """One piece of advice: a stable `code` (see ADVICE_CODES) and a sentence for people."""

    code: str
    message: str
    epoch: int | None = None

    def as_dict(self) -> dict[str, str]:
        """The `{code, message}` object of the result JSON's `advice` list."""
        return {"code": self.code, "message": self.message}


# --- helpers over the trainer's records ---------------------------------------------------------


def _number(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key)
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _series(epochs: Sequence[dict[str, Any]], key: str) -> list[float] | None:
    """The finite values of `key` over all epochs, or None when any epoch lacks one."""
    values = [_number(record, key) for record in epochs]
    if not values or any(v is None for v in values):
        return None
    return [float(v) for v in values]  # type: ignore[arg-type]


def _epoch_of_step(epochs: Sequence[dict[str, Any]], step: int) -> int | None:
    """The 1-based epoch whose steps include the 1-based `step` (records carry cumulative steps).

    A step past the last record is in the epoch after it: the trainer writes no record for the
    epoch in which the run diverged.
    """
    for record in epochs:
        last = record.get("step")
        if last is None:
            return None
        if step <= int(last):
            return int(record["epoch"])
    return int(epochs[-1]["epoch"]) + 1 if epochs else 1


def _steps_until_epoch(epochs: Sequence[dict[str, Any]], epoch: int, total: int) -> int:
    """Number of steps taken by the end of `epoch` (all steps when the records do not say)."""
    for record in epochs:
        if int(record.get("epoch", 0)) == epoch and record.get("step") is not None:
            return min(int(record["step"]), total)
    return total


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


# --- the rules ---------------------------------------------------------------------------------


def rule_lr_too_high(
    epochs: Sequence[dict[str, Any]],
    step_losses: Sequence[float],
    *,
    diverged: bool,
    diverge_factor: float = DIVERGE_FACTOR,
) -> Advice | None:
    """The run diverged (the trainer's guard stopped it, or the step losses show NaN/inf or a
    rise above `diverge_factor` x the initial loss, the run's train.diverge_factor): lower the
    lr."""
    guard = DivergenceGuard(factor=diverge_factor)
    for loss in step_losses:
        if guard.update(loss):
            break
    step = guard.diverged_at
    if step is None and diverged and step_losses:
        step = len(step_losses)  # the trainer stops at the step where its guard fired
    epoch = _epoch_of_step(epochs, step) if step is not None else None
    if epoch is None:  # the records may hold a non-finite epoch loss without per-step losses
        epoch = next(
            (
                int(record["epoch"])
                for record in epochs
                if record.get("train_loss") is not None
                and not math.isfinite(float(record["train_loss"]))
            ),
            None,
        )
    if not (diverged or step is not None or epoch is not None):
        return None
    where = f" at step {step}" if step is not None else ""
    where += f" (epoch {epoch})" if epoch is not None else ""
    return Advice(
        "lr_too_high",
        f"learning rate too high: the loss diverged{where}, it became NaN/inf or exploded above "
        "its initial value; lower the learning rate 3-10x, or run `trainlab lr-find`",
        epoch,
    )


def rule_lr_too_low(
    epochs: Sequence[dict[str, Any]],
    step_losses: Sequence[float],
    update_ratios: Sequence[float | None] | None = None,
) -> Advice | None:
    """The loss hardly moved over the first LOW_LR_EPOCHS epochs: raise the lr (or find the bug).

    Not when the updates are far too large (update_ratio rule): a loss that stays flat under
    huge steps (Adam lr 0.1 on digits, one seed in three) needs a lower learning rate.
    """
    losses = [float(v) for v in step_losses]
    if not losses or not all(math.isfinite(v) for v in losses):
        return None
    ratio = _median_update_ratio(epochs, update_ratios)
    if ratio is not None and ratio > UPDATE_RATIO_TARGET * UPDATE_RATIO_FAR:
        return None
    first_accuracy = _number(epochs[0], "train_accuracy") if epochs else None
    if first_accuracy is not None and first_accuracy >= LOW_LR_DONE_ACCURACY:
        return None
    n_epochs = min(LOW_LR_EPOCHS, len(epochs)) if epochs else 0
    window = _steps_until_epoch(epochs, n_epochs, len(losses)) if n_epochs else len(losses)
    if window < 2 * LOW_LR_AVG_STEPS:
        return None
    start = _mean(losses[:LOW_LR_AVG_STEPS])
    end = _mean(losses[window - LOW_LR_AVG_STEPS : window])
    if start <= 0.0:
        return None
    drop = (start - end) / start
    if drop >= LOW_LR_MIN_DROP:
        return None
    span = f"first {n_epochs} epoch{'s' if n_epochs != 1 else ''}" if n_epochs else "run"
    return Advice(
        "lr_too_low",
        f"learning rate too low (or a bug): the loss fell {100 * drop:.1f}% in the {span} "
        f"({start:.4g} -> {end:.4g}); raise the learning rate ~10x, and if it still does not "
        "move check the labels, the loss and that gradients reach the weights",
        n_epochs or None,
    )


def rule_bad_init(step_losses: Sequence[float], *, num_classes: int) -> Advice | None:
    """The loss at step 0 is far above log(C), the loss of a C-class softmax at a good init."""
    if num_classes < 2 or not step_losses:
        return None
    initial = float(step_losses[0])
    expected = math.log(num_classes)
    if not math.isfinite(initial) or initial <= BAD_INIT_RATIO * expected:
        return None
    return Advice(
        "bad_init",
        f"check the initialization/scaling: the initial loss {initial:.3g} is "
        f"{initial / expected:.1f}x log({num_classes}) = {expected:.3g}, the loss of a softmax "
        "classifier with small random weights; standardize the inputs and use a scaled init "
        "(e.g. Kaiming/Xavier) so the first logits are small",
        1,
    )


def rule_overfitting(epochs: Sequence[dict[str, Any]]) -> Advice | None:
    """Train accuracy pulled away from validation accuracy: regularize or get more data."""
    train = _series(epochs, "train_accuracy")
    val = _series(epochs, "val_accuracy")
    if train is None or val is None or len(epochs) < OVERFIT_LAST_EPOCHS:
        return None
    gaps = [t - v for t, v in zip(train, val)]
    gap = _mean(gaps[-OVERFIT_LAST_EPOCHS:])
    if gap < OVERFIT_GAP:
        return None
    since = next(int(epochs[i]["epoch"]) for i, g in enumerate(gaps) if g >= OVERFIT_GAP)
    return Advice(
        "overfitting",
        f"overfitting: more regularization or data: train accuracy {train[-1]:.3f} vs validation "
        f"{val[-1]:.3f} (gap {gap:.2f}, above {OVERFIT_GAP:g} since epoch {since}); add weight "
        "decay, dropout or augmentation, get more data, or keep the best epoch (early stopping)",
        since,
    )


def rule_underfitting(epochs: Sequence[dict[str, Any]]) -> Advice | None:
    """Train and validation accuracy stay low with no gap: the model cannot fit the data.

    Unless the train loss has gone back up meanwhile: then the learning rate is too high.

    Judged on the last third of the epochs (best and mean accuracies), so one noisy epoch at the
    end of a high-lr run does not count as a low plateau.
    """
    train = _series(epochs, "train_accuracy")
    val = _series(epochs, "val_accuracy")
    if train is None or val is None or len(epochs) < MIN_EPOCHS_FOR_TRENDS:
        return None
    k = max(1, len(train) // 3)
    best_train, best_val = max(train[-k:]), max(val[-k:])
    gain = best_train - max(train[:-k])
    gap = _mean(train[-k:]) - _mean(val[-k:])
    if (
        best_train >= UNDERFIT_ACCURACY
        or best_val >= UNDERFIT_ACCURACY
        or gap > UNDERFIT_MAX_GAP
        or gain > UNDERFIT_MAX_GAIN
    ):
        return None
    losses = _series(epochs, "train_loss")
    if losses is not None and _mean(losses[-k:]) > UNDERFIT_LOSS_RISE * min(losses[:-k]):
        return Advice(
            "lr_too_high",
            f"learning rate too high: the train loss went back up from {min(losses[:-k]):.3g} "
            f"to {_mean(losses[-k:]):.3g} (mean of the last {k} epochs) while train accuracy "
            f"stays at {best_train:.3f}: lower the learning rate 3-10x",
            int(epochs[-k]["epoch"]),
        )
    return Advice(
        "underfitting",
        f"underfitting: a bigger model or a higher learning rate: train accuracy stays at "
        f"{best_train:.3f} at best over the last {k} epochs ({gain:+.3f} over the earlier best) "
        f"with no train/validation gap (validation {best_val:.3f})",
        int(epochs[-k]["epoch"]),
    )


def _median_update_ratio(
    epochs: Sequence[dict[str, Any]], update_ratios: Sequence[float | None] | None
) -> float | None:
    """Median over epochs of the update/weight ratio (`update_ratios` if given, else records')."""
    if update_ratios is None:
        update_ratios = [record.get("update_ratio") for record in epochs]
    values = sorted(
        float(v)
        for v in update_ratios
        if v is not None and math.isfinite(float(v)) and float(v) >= 0.0
    )
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


def rule_update_ratio(
    epochs: Sequence[dict[str, Any]], update_ratios: Sequence[float | None] | None = None
) -> Advice | None:
    """The median update/weight ratio over epochs is more than UPDATE_RATIO_FAR x off 1e-3."""
    median = _median_update_ratio(epochs, update_ratios)
    if median is None:
        return None
    if UPDATE_RATIO_TARGET / UPDATE_RATIO_FAR <= median <= UPDATE_RATIO_TARGET * UPDATE_RATIO_FAR:
        return None
    if median > UPDATE_RATIO_TARGET:
        factor = median / UPDATE_RATIO_TARGET
        direction = (
            f"far above ~{UPDATE_RATIO_TARGET:g}: lower the learning rate (about {factor:.0f}x)"
        )
    else:
        factor = UPDATE_RATIO_TARGET / max(median, 1e-30)
        direction = f"far below ~{UPDATE_RATIO_TARGET:g}: raise the learning rate"
        direction += f" (about {factor:.0f}x)" if factor < 1e3 else " (by orders of magnitude)"
    return Advice(
        "update_ratio",
        f"update/weight ratio {median:.1e} (median over epochs) is {direction}",
        None,
    )


def _decay_points(epochs: Sequence[dict[str, Any]], milestones: Sequence[float]) -> list[float]:
    """When the step decays happened, in epochs elapsed (the schedule's milestones).

    The config's milestones when given; otherwise read from the records' lr, which the trainer
    writes after each epoch's last step: a drop in epoch e's record means a decay after e epochs.
    """
    if milestones:
        return sorted(float(m) for m in milestones if m > 0)
    lrs = _series(epochs, "lr")
    if lrs is None:
        return []
    return [
        float(epochs[i]["epoch"])
        for i in range(1, len(lrs))
        if lrs[i] <= DECAY_LR_FACTOR * lrs[i - 1]
    ]


def _log_slope(losses: Sequence[float]) -> float:
    """Least-squares slope of log(loss) per epoch: -0.1 means the loss falls ~10% per epoch."""
    n = len(losses)
    ys = [math.log(v) for v in losses]
    x_mean, y_mean = (n - 1) / 2, _mean(ys)
    num = sum((x - x_mean) * (y - y_mean) for x, y in enumerate(ys))
    return num / sum((x - x_mean) ** 2 for x in range(n))


def _plateau_start(losses: Sequence[float], end: int) -> int | None:
    """Index of the epoch where the plateau that ends at index `end` begins, or None if none."""
    if any(v <= 0.0 for v in losses[: end + 1]):
        return None
    for start in range(0, end - PLATEAU_EPOCHS + 2):
        window = losses[start : end + 1]
        if -_log_slope(window) < PLATEAU_MAX_RATE:
            level = sorted(window)[len(window) // 2]
            while start < end and losses[start] > PLATEAU_LEVEL * level:
                start += 1  # the steep part before the floor is not the plateau
            return start
    return None


def rule_try_decay(
    epochs: Sequence[dict[str, Any]], *, schedule: str, milestones: Sequence[float]
) -> Advice | None:
    """A loss plateau without decay, or one that only a late step decay broke: decay (earlier)."""
    losses = _series(epochs, "train_loss")
    if losses is None or len(losses) < PLATEAU_EPOCHS:
        return None
    if schedule == "step":
        index = {int(record["epoch"]): i for i, record in enumerate(epochs)}
        for decay in _decay_points(epochs, milestones):
            # the last epoch trained wholly before the decay, and the (up to two) epochs after it
            before = index.get(math.floor(decay))
            if before is None or before + 1 >= len(losses):
                continue
            start = _plateau_start(losses, before)
            if start is None:
                continue
            drop = 1.0 - min(losses[before + 1 : before + 3]) / _mean(losses[start : before + 1])
            if drop >= SUDDEN_DROP:
                plateau_epoch = int(epochs[start]["epoch"])
                return Advice(
                    "try_decay",
                    f"the loss plateaued from epoch {plateau_epoch} until the learning-rate "
                    f"decay after epoch {decay:g}, then dropped {100 * drop:.0f}%: decay earlier "
                    f"(step decay after about {plateau_epoch} epochs) or use cosine decay",
                    plateau_epoch,
                )
        return None
    if schedule != "constant" or losses[-1] < CONVERGED_LOSS:
        return None
    start = _plateau_start(losses, len(losses) - 1)
    if start is None:
        return None
    plateau_epoch = int(epochs[start]["epoch"])
    return Advice(
        "try_decay",
        f"the loss plateaued at {losses[-1]:.3g} from epoch {plateau_epoch} with a constant "
        f"learning rate: try step decay (x0.1 after about {plateau_epoch} epochs) or cosine "
        "decay",
        plateau_epoch,
    )


def advise(
    epochs: list[dict[str, Any]],
    step_losses: list[float],
    *,
    num_classes: int,
    schedule: str = "constant",
    milestones: Sequence[float] = (),
    diverged: bool = False,
    update_ratios: list[float | None] | None = None,
    diverge_factor: float = DIVERGE_FACTOR,
) -> list[Advice]:
    """All advice for one run, from its per-epoch records and per-step training losses.

    `epochs`: the trainer's records (epoch, step, train_loss, train_accuracy, val_loss,
    val_accuracy, lr after the epoch's last step, seconds, optional update_ratio; None for a
    missing or non-finite value); `update_ratios`, when given, replaces the records'
    update_ratio (one per epoch). `schedule`: the schedule the run followed (cosine_restarts
    with train.snapshots), `milestones`: the step schedule's decay points in epochs elapsed
    (when empty, decays are read from the records' lr); `diverge_factor`: the run's
    train.diverge_factor.

    A diverged run gets only lr_too_high and bad_init (its later curves mean nothing);
    underfitting is left out when lr_too_low already explains the flat curves, and try_decay when
    lr_too_low, lr_too_high or underfitting fired (decay is second order: fix the first-order
    problem first).
    """
    if num_classes < 1:
        raise UserError(f"num_classes: must be an integer >= 1, got {num_classes}")
    records = list(epochs)
    high = rule_lr_too_high(records, step_losses, diverged=diverged, diverge_factor=diverge_factor)
    if high is not None:
        return [a for a in (high, rule_bad_init(step_losses, num_classes=num_classes)) if a]
    rules: list[Callable[[], Advice | None]] = [
        lambda: rule_lr_too_low(records, step_losses, update_ratios),
        lambda: rule_bad_init(step_losses, num_classes=num_classes),
        lambda: rule_overfitting(records),
        lambda: rule_underfitting(records),
        lambda: rule_update_ratio(records, update_ratios),
        lambda: rule_try_decay(records, schedule=schedule, milestones=milestones),
    ]
    advice = [a for a in (rule() for rule in rules) if a is not None]
    found = {a.code for a in advice}
    if "lr_too_low" in found:
        advice = [a for a in advice if a.code != "underfitting"]
    if found & {"lr_too_low", "underfitting", "lr_too_high"}:
        advice = [a for a in advice if a.code != "try_decay"]
    return advice
