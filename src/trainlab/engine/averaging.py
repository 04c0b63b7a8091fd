"""Weight averaging during training: Polyak/EMA averaging and snapshot ensembles (CS231n lecture
7, "model ensembles" tips), as trainer callbacks that `train.ema` and `train.snapshots` switch on.

Both leave the single model's numbers alone and add theirs beside them in `result.extra`:
`ema_val_accuracy`/`ema_test_accuracy` (weights in `ema.pt`) and
`snapshot_val_accuracy`/`snapshot_test_accuracy` (weights in `snapshots/snapshot-<k>.pt`). Every
file has the layout of best.pt, so `trainlab eval` and `trainlab ensemble` read them too.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from trainlab import schedules
from trainlab.config import ExperimentConfig
from trainlab.data.streaming import Split, TensorSplit
from trainlab.engine.checkpoints import load_checkpoint, save_checkpoint
from trainlab.engine.evaluate import accuracy_of_proba, average_proba_split, evaluate_split
from trainlab.engine.state import Result
from trainlab.engine.trainer import Callback, Trainer
from trainlab.smoothing import debiased_decay


def averaging_callbacks(cfg: ExperimentConfig) -> list[Callback]:
    """The callbacks `train.ema` and `train.snapshots` ask for."""
    found: list[Callback] = []
    if cfg.train.ema is not None:
        found.append(EMA(cfg.train.ema))
    if cfg.train.snapshots:
        found.append(Snapshots(cfg.train.snapshots))
    return found


def _finite(tensors: list[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


# --------------------------------------------------------------------------------- Polyak / EMA
@torch.no_grad()
def ema_update(averaged: list[torch.Tensor], weights: list[torch.Tensor], decay: float) -> None:
    """One Polyak-averaging step, in place on `averaged`:

        averaged = decay * averaged + (1 - decay) * weights

    written as averaged += (1 - decay) * (weights - averaged), one fused foreach lerp over all
    tensors (no Python loop over parameters, no temporary copies of the model)."""
    torch._foreach_lerp_(averaged, weights, 1.0 - decay)


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, data: torch.Tensor | Split, batch_size: int) -> bool:
    """Re-estimate the running mean/variance of every batch-norm layer for the model's current
    weights with one pass over `data` (inputs or a split, in memory or streamed; a cumulative
    average over batches, as torch.optim.swa_utils.update_bn does). False when the model has
    no batch norm."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    momenta = {}
    for bn in bns:
        bn.reset_running_stats()
        momenta[bn] = bn.momentum
        bn.momentum = None  # None: cumulative moving average, i.e. the plain mean over batches
    was_training = model.training
    model.train()
    split = TensorSplit(data, data) if isinstance(data, torch.Tensor) else data
    try:
        for batch, _ in split.batches(batch_size, min_size=2):  # not a batch of one
            model(batch)
    finally:
        for bn, m in momenta.items():
            bn.momentum = m
        model.train(was_training)
    return True


class EMA(Callback):
    """Polyak averaging: an exponential moving average of the weights, updated after every
    optimizer step and used at test time (the averaged network is evaluated beside the single
    one). Bias-corrected as Adam's moments are, so that the average does not start at the random
    initial weights: the debiased average of trainlab.smoothing, kept in place with its decay
    d_t (d_1 = 0: the first average is the weights after step 1; d_t -> decay). The average
    spans about 1 / (1 - decay) steps (1000 for 0.999): a run should be several times longer
    than that.

    Buffers (batch-norm running mean and variance) are not averaged. The running statistics of
    the live model describe the activations of the live weights, not those of the average, which
    is a different network; so at the end they are recomputed for the averaged weights with one
    pass over the training split (no augmentation), as SWA does (Izmailov et al. 2018,
    torch.optim.swa_utils.update_bn). Models without batch norm take their buffers as they are.
    """

    def __init__(self, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"train.ema: must be in [0, 1), got {decay}")
        self.decay = decay
        self.averaged: dict[str, torch.Tensor] | None = None
        self.updates = 0
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    def _init(self, model: nn.Module) -> None:
        if self.averaged is None:
            self.averaged = {n: p.detach().clone() for n, p in model.named_parameters()}
        params = dict(model.named_parameters())
        if set(params) != set(self.averaged):
            raise ValueError("EMA: the averaged weights do not match the model's parameters")
        names = list(self.averaged)
        self.averaged = {n: self.averaged[n].to(params[n].device) for n in names}
        self._pairs = ([self.averaged[n] for n in names], [params[n].detach() for n in names])

    def on_train_start(self, trainer: Trainer) -> None:
        self._init(trainer.model)

    def update(self) -> None:
        assert self._pairs is not None
        self.updates += 1
        ema_update(self._pairs[0], self._pairs[1], debiased_decay(self.decay, self.updates))

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        self.update()

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if trainer.full_batch:  # L-BFGS and Newton take one step per epoch, without step hooks
            self.update()

    def state_dict(self) -> dict[str, Any]:
        return {"averaged": self.averaged, "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged = state.get("averaged")
        self.updates = int(state.get("updates", 0))
        self._pairs = None  # rebuilt against the live model in on_train_start

    def averaged_model(self, trainer: Trainer) -> nn.Module:
        """A copy of the trainer's network holding the averaged weights (and batch-norm
        statistics recomputed for them)."""
        if self._pairs is None:
            self._init(trainer.model)
        assert self.averaged is not None
        model = copy.deepcopy(trainer.model)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(self.averaged[name])
        torch.manual_seed(trainer.cfg.train.seed)  # dropout masks during the statistics pass
        recompute_batch_norm(model, trainer.data.train, trainer.cfg.train.batch_size)
        return model.eval()

    def on_train_end(self, trainer: Trainer, result: Result) -> None:
        if self.averaged is None or not _finite(list(self.averaged.values())):
            result.extra.update(ema_val_accuracy=None, ema_test_accuracy=None)
            return  # a diverged run: the average holds inf/nan
        model = self.averaged_model(trainer)
        data = trainer.data
        val = evaluate_split(model, data.val)[1] if len(data.val) else float("nan")
        result.extra["ema_val_accuracy"] = None if math.isnan(val) else val
        result.extra["ema_test_accuracy"] = evaluate_split(model, data.test)[1]
        result.extra["ema_decay"] = self.decay
        save_checkpoint(
            trainer.run.ema,
            {
                **trainer.best_weights(),
                "model": model.state_dict(),
                "epoch": trainer.state.epoch,
                "updates": self.updates,
                "decay": self.decay,
            },
        )


# ---------------------------------------------------------------------------- snapshot ensembles
class Snapshots(Callback):
    """Snapshot ensembles (Huang et al. 2017): `train.snapshots: M` makes the schedule cosine with
    M warm restarts (build.make_schedule); at the end of each cycle, where the learning rate is
    lowest and the model sits in a local minimum, the weights are saved as
    snapshots/snapshot-<k>.pt. At the end the M snapshots' predicted probabilities are averaged,
    an ensemble of M models for the cost of one training run.

    Snapshots are taken after the optimizer step that ends a cycle (schedules.cycle_ends); a
    snapshot not yet taken when an epoch ends past its step (full-batch optimizers, a skipped
    batch of one) is taken then. Resume replays the unfinished epoch, so a snapshot written in it
    is written again with the same weights.
    """

    def __init__(self, cycles: int) -> None:
        self.cycles = cycles
        self.taken: list[int] = []  # 1-based indices of the snapshots on disk
        self.steps: list[int] = []  # the global step at which each was taken
        self.ends: list[int] = []

    def on_train_start(self, trainer: Trainer) -> None:
        s, t = trainer.cfg.schedule, trainer.cfg.train
        self.ends = schedules.cycle_ends(
            t.epochs, trainer.steps_per_epoch, self.cycles, warmup_epochs=s.warmup_epochs, per=s.per
        )
        if trainer.ranks.main:  # rank 0 alone writes the run directory
            trainer.run.snapshots_dir.mkdir(exist_ok=True)

    def _take(self, trainer: Trainer, k: int) -> None:
        if trainer.ranks.main:
            save_checkpoint(
                trainer.run.snapshot(k),
                {**trainer.best_weights(), "step": trainer.state.step, "cycle": k},
            )
        if k in self.taken:
            self.steps[self.taken.index(k)] = trainer.state.step
        else:
            self.taken.append(k)
            self.steps.append(trainer.state.step)

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        step = trainer.state.step
        for k, end in enumerate(self.ends, start=1):
            if step == end:
                self._take(trainer, k)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        last_epoch = record["epoch"] >= trainer.cfg.train.epochs
        for k, end in enumerate(self.ends, start=1):
            if k not in self.taken and (trainer.state.step >= end or last_epoch):
                self._take(trainer, k)

    def state_dict(self) -> dict[str, Any]:
        return {"taken": list(self.taken), "steps": list(self.steps)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.taken = [int(k) for k in state.get("taken", [])]
        self.steps = [int(s) for s in state.get("steps", [])]

    def on_train_end(self, trainer: Trainer, result: Result) -> None:
        paths = [trainer.run.snapshot(k) for k in sorted(self.taken)]
        paths = [p for p in paths if p.exists()]
        result.extra["snapshots"] = len(paths)
        if not paths:
            result.extra.update(snapshot_val_accuracy=None, snapshot_test_accuracy=None)
            return
        models = []
        for p in paths:
            state = load_checkpoint(p, trainer.device)["model"]
            if not _finite(list(state.values())):
                continue
            model = copy.deepcopy(trainer.model)
            model.load_state_dict(state)
            models.append(model.eval())
        data = trainer.data
        if not models:
            result.extra.update(snapshot_val_accuracy=None, snapshot_test_accuracy=None)
            return
        val = accuracy_of_proba(*average_proba_split(models, data.val))
        result.extra["snapshot_val_accuracy"] = None if math.isnan(val) else val
        result.extra["snapshot_test_accuracy"] = accuracy_of_proba(
            *average_proba_split(models, data.test)
        )
