"""The training engine: minibatches, cross-entropy, optimizer step, schedule step, per-epoch
evaluation, callbacks. Every epoch ends with a checkpoint, so a killed run resumes where it was
and reaches the same numbers (randomness is re-derived from the seed and the epoch). The epoch's
files are written by a background thread while the next epoch trains (trainlab.engine.writer);
`fit()` returns when they are on disk.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.config import ExperimentConfig
from trainlab.data import AnySplits, prepare
from trainlab.data.augment import parse_augment
from trainlab.data.streaming import batch_count
from trainlab.divergence import DivergenceGuard
from trainlab.engine.build import WeightPenalty, make_optimizer, make_schedule, pick_device
from trainlab.engine.checkpoints import save_checkpoint
from trainlab.engine.distributed import current
from trainlab.engine.evaluate import evaluate_split
from trainlab.engine.precision import Precision
from trainlab.engine.state import Result, TrainState
from trainlab.engine.update_ratio import UpdateRatioMeter
from trainlab.engine.writer import BackgroundWriter, snapshot
from trainlab.errors import UserError
from trainlab.nn.models import build_model
from trainlab.nn.plugins import check_output
from trainlab.optim import FULL_BATCH
from trainlab.rundir import METRICS, STEPS, RunDir


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's randomness (shuffling, dropout, augmentation): a function of the
    run's seed and the epoch only, so a resumed run draws the same numbers."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch]).generate_state(1)[0])


class Callback:
    """Hooks into the loop; `on_epoch_end` returning True stops the run (pruning, for instance)."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, loss: float) -> None: ...

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> bool | None: ...

    def on_train_end(self, trainer: Trainer, result: Result) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Trainer:
    """The engine: epochs of minibatch (or full-batch) steps, the schedule, the divergence guard,
    callbacks at each hook, a checkpoint after every epoch. `fit()` returns the stopped reason."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        run_dir: RunDir,
        splits: AnySplits | None = None,
        callbacks: Sequence[Callback] = (),
        model: nn.Module | Callable[..., Any] | None = None,
        lr_mult: dict[str, float] | None = None,
        search_dirs: Sequence[str] = (),
    ) -> None:
        """`model`: a network to train as is, or a factory called like a plugin model.kind;
        `search_dirs`: folders besides sys.path where the config's plugins are looked up."""
        self.cfg, self.run = cfg, run_dir
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = pick_device(t.device)
        self.data = (splits or prepare(cfg.data, search_dirs=tuple(search_dirs))).to(self.device)
        torch.manual_seed(t.seed)  # model initialization
        if not isinstance(model, nn.Module):
            model = build_model(
                cfg.model, self.data.input_shape, self.data.num_classes, search_dirs, model
            )
        self.model = model.to(self.device)
        # under torch.distributed (engine/distributed.py): the loop calls DDP around the model,
        # each rank trains on its share of every global batch, rank 0 alone writes the run
        self.ranks = current()
        self.full_batch = cfg.optim.name in FULL_BATCH
        if self.ranks.many and self.full_batch:
            raise UserError(
                f"optim.name: {cfg.optim.name} takes full-batch steps; one run on many "
                "processes needs a minibatch optimizer (adam, momentum, ...)"
            )
        skips = cfg.model.stochastic_depth > 0
        self.net = self.ranks.wrap(self.model, t.sync_bn, self.device, skips)
        optimizer = make_optimizer(self.model, cfg, lr_mult)
        self.optimizer = self.ranks.shard(optimizer, t.shard_optimizer)
        self.precision = Precision(t.precision, self.device, self.full_batch)
        if self.full_batch and self.data.streamed:
            raise UserError(
                f"optim.name: {cfg.optim.name} takes full-batch steps on the whole training "
                "split in memory; a streamed Dataset is read in minibatches: use a minibatch "
                "optimizer (adam, momentum, ...) or return arrays"
            )
        # batch norm cannot normalize a batch of one: a last batch of one is skipped
        batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        self.min_batch = self.ranks.min_batch(batch_norm, t.sync_bn)
        if t.batch_size < self.min_batch:
            raise UserError(
                f"train.batch_size: the global batch of {t.batch_size} must give each of the "
                f"{self.ranks.world} processes an example (at least {self.min_batch})"
            )
        # optimizer steps per epoch: one per train.accumulate minibatches (a partial last group
        # steps too); schedules, the update-ratio meter and snapshots count these steps
        batches = batch_count(len(self.data.train), t.batch_size, self.min_batch)
        self.steps_per_epoch = 1 if self.full_batch else math.ceil(batches / t.accumulate)
        self.scheduler = make_schedule(self.optimizer, cfg, self.steps_per_epoch)
        if hasattr(self.optimizer, "last_step"):  # trainlab.optim: no compiling ahead for nothing
            self.optimizer.last_step = t.epochs * self.steps_per_epoch
        # schedule.per: the scheduler moves after every optimizer step, or once after each epoch
        # (full-batch optimizers take one step per epoch, so both are the same there)
        self.schedule_per_step = cfg.schedule.per == "step" or self.full_batch
        self.penalty = WeightPenalty(self.model, t)
        self.augment = self._augmenter()
        self._check_tta()
        self._check_crop_size()
        self.callbacks = list(callbacks)
        self.state = TrainState()
        self.guard = DivergenceGuard(factor=t.diverge_factor)
        self.step_losses: list[float] = []
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self._grad_norms: list[torch.Tensor] = []  # pre-clip global norms of this epoch's steps
        self.update_ratio = UpdateRatioMeter(list(self.model.parameters()), self.steps_per_epoch)
        self.write_curves = True  # curves.png at the end (train(..., curves=False) skips it)
        self.writer = BackgroundWriter()  # the epochs' files, written while training goes on

    def _augmenter(self) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
        if not self.cfg.data.augment:
            return None
        aug = parse_augment(
            self.cfg.data.augment,
            self.data.kind,
            self.data.input_shape[0],
            self.data.input_shape[1:],
        )
        return aug.fit(self.data.fit_sample())

    def _check_tta(self) -> None:
        mode, kind = self.cfg.train.tta, self.data.kind
        if mode == "none":
            return
        if kind == "vector":
            raise UserError(f"train.tta: {mode} needs signals or images; this data holds vectors")
        if mode == "ten_crop":
            if kind != "image":
                raise UserError("train.tta: ten_crop needs images; use flip for signals")
            crop = self.augment.tta_crop() if self.augment is not None else {"crop_size": None}
            if crop["crop_size"] is None and not crop.get("pad"):
                raise UserError(
                    "train.tta: ten_crop needs a training crop in data.augment "
                    "(crop or resized_crop); the crops are taken at that size"
                )

    def _check_crop_size(self) -> None:
        """Training crops (and ten-crop views) smaller than the inputs must suit the model: a
        model of the user's own (or an MLP) may take one input size only; one line if not."""
        crop = self.augment.tta_crop()["crop_size"] if self.augment is not None else None
        if crop is None:
            return
        dims = len(self.data.input_shape) - 1
        size = (crop,) * dims if isinstance(crop, int) else tuple(int(c) for c in crop)
        shape = (self.data.input_shape[0], *size)
        why = " (the size of the training crops)"
        check_output(
            self.model, self.cfg.model.kind, shape, self.data.num_classes, "data.augment", why
        )

    # ---------------------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.ranks.optimizer_state(self.optimizer),
            "scheduler": self.scheduler.state_dict(),
            "state": dict(self.state.__dict__),
            "guard": self.guard.state_dict(),
            "precision": self.precision.state_dict(),
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "callback_names": [type(cb).__name__ for cb in self.callbacks],
            "normalizer": self.data.normalizer.state_dict(),
            "input_shape": list(self.data.input_shape),
            "num_classes": self.data.num_classes,
        }

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state = TrainState(**ckpt["state"])
        self.guard.load_state_dict(ckpt["guard"])
        self.precision.load_state_dict(ckpt.get("precision", {}))
        states = list(zip(ckpt.get("callback_names", []), ckpt.get("callbacks", [])))
        if len(states) != len(ckpt.get("callbacks", [])):  # an older checkpoint: by position
            states = [
                (type(cb).__name__, st) for cb, st in zip(self.callbacks, ckpt.get("callbacks", []))
            ]
        for cb in self.callbacks:  # by class, so a resume with other callbacks keeps each state
            i = next((i for i, (name, _) in enumerate(states) if name == type(cb).__name__), None)
            if i is not None:
                cb.load_state_dict(states.pop(i)[1])

    def best_weights(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "normalizer": self.data.normalizer.state_dict(),
            "input_shape": list(self.data.input_shape),
            "num_classes": self.data.num_classes,
            "epoch": self.state.epoch,
        }

    # -------------------------------------------------------------------------------- training
    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(data loss + regularization, logits); the forward pass under train.precision's
        autocast, the loss in float32."""
        with self.precision.autocast():
            logits = self.net(x)
        smoothing = self.cfg.train.label_smoothing
        loss = F.cross_entropy(logits.float(), y, label_smoothing=smoothing)
        return (loss + self.penalty() if self.penalty.active else loss), logits

    def train_epoch(self, epoch: int) -> tuple[float, float, bool]:
        """One pass over the training split: (mean loss, running accuracy, diverged)."""
        seed = epoch_seed(self.cfg.train.seed, epoch)
        torch.manual_seed(self.ranks.seed(seed))  # dropout, DropConnect, stochastic depth masks
        gen = torch.Generator(device="cpu").manual_seed(seed)
        # augmentation: the epoch's generator on rank 0, one of (seed, epoch, rank) on the others
        aug_gen = gen if self.ranks.main else torch.Generator().manual_seed(self.ranks.seed(seed))
        self.model.train()
        if self.full_batch:
            return self._full_batch_step(self.data.x_train, self.data.y_train)
        bs, total, count, seen = self.cfg.train.batch_size, 0.0, 0, 0
        split = self.data.train
        n_batches = batch_count(len(split), bs, self.min_batch)
        batches = split.batches(bs, gen, self.min_batch)  # shuffled by the epoch's generator
        acc = self.cfg.train.accumulate
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        opt, sched, guard = self.optimizer, self.scheduler, self.guard
        for g in range(0, n_batches, acc):
            group = range(g, min(g + acc, n_batches))  # one optimizer step; the last may be shorter
            opt.zero_grad(set_to_none=True)
            group_loss = 0.0
            for _ in group:
                x, y = next(batches)
                x, y, share = self.ranks.share(x, y)  # this rank's slice of the global batch
                if self.augment is not None:
                    x = self.augment(x, aug_gen)
                loss, logits = self.loss(x, y)
                # the mean of the group's minibatch gradients (equal batches: one batch of k*B)
                self.precision.backward(self.ranks.local_loss(loss, share) / len(group))
                correct += (logits.detach().argmax(1) == y).sum()
                seen += len(y)
                value = self.ranks.global_mean(loss, share)
                group_loss += value / len(group)
                total, count = total + value, count + 1
            self.update_ratio.before_step(g // acc)
            self._clip()
            self.precision.step(opt)  # fp16 may skip it (inf/nan gradients): counted
            self.update_ratio.after_step()
            self.state.step += 1
            self.step_losses.append(group_loss)
            for cb in self.callbacks:  # they see the lr this step used
                cb.on_step_end(self, group_loss)
            if self.schedule_per_step:
                sched.step()
            if guard.update(group_loss):
                batches.close()  # ends this epoch's read of the split
                return group_loss, float("nan"), True
        right, seen = self.ranks.counts(correct, seen)
        return total / max(count, 1), right / max(seen, 1), False

    def _clip(self) -> None:
        """train.clip_grad_norm: scale the gradients so their global norm (all trainable
        parameters together) is at most the limit; the pre-clip norm goes to `grad_norm`. A
        non-finite norm turns the weights non-finite and the divergence guard stops the run."""
        limit = self.cfg.train.clip_grad_norm
        if limit is None:
            return
        self.precision.unscale(self.optimizer)  # fp16: clip the true gradients
        norm = torch.nn.utils.clip_grad_norm_(self.trainable, limit, error_if_nonfinite=False)
        self._grad_norms.append(norm.detach())

    def grad_norm(self) -> float | None:
        """The median pre-clip global gradient norm over the epoch's steps (None without
        clipping, or when none was finite); resets."""
        values = torch.stack(self._grad_norms).tolist() if self._grad_norms else []
        self._grad_norms = []
        finite = [v for v in values if math.isfinite(v)]
        return statistics.median(finite) if finite else None

    def _full_batch_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, bool]:
        """L-BFGS and Newton: one optimizer step per epoch on the whole training split."""

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(x, y)[0]
            loss.backward()
            return loss

        self.optimizer.step(closure)
        self.scheduler.step()
        with torch.no_grad():
            loss, logits = self.loss(x, y)
        value = loss.item()
        self.state.step += 1
        self.step_losses.append(value)
        accuracy = (logits.argmax(1) == y).float().mean().item()
        return value, accuracy, self.guard.update(value)

    def epoch_record(
        self, epoch: int, train_loss: float, train_acc: float, seconds: float
    ) -> dict[str, Any]:
        val_loss, val_acc = self.ranks.on_main(lambda: evaluate_split(self.model, self.data.val))
        record = {
            "epoch": epoch,
            "step": self.state.step,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": seconds,
        }
        ratio = None if self.full_batch else self.update_ratio.epoch_value()
        if ratio is not None:
            record["update_ratio"] = ratio  # train/update_ratio.py defines it
        grad_norm = self.grad_norm()
        if grad_norm is not None:
            record["grad_norm"] = grad_norm  # pre-clip, only with train.clip_grad_norm
        if self.precision.scaler is not None:
            record["skipped_steps"] = self.precision.take_skipped()  # fp16: inf/nan gradients
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }

    def _write_epoch(
        self, record: dict[str, Any], best: dict[str, Any] | None, last: dict[str, Any]
    ) -> None:
        """An epoch's files, in this order: its metrics line, best.pt when it improved, last.pt
        (on the writer's thread; `best` and `last` are snapshots taken when the epoch ended)."""
        self.run.append_jsonl(METRICS, [record])
        if best is not None:
            save_checkpoint(self.run.best, best)
        save_checkpoint(self.run.last, last)

    def fit(self) -> str:
        """Train until the epochs run out, early stopping, divergence or a callback says stop.
        Every epoch's files are written when it returns (or raises)."""
        try:
            reason = self._epochs()
        except BaseException:
            self.writer.wait(raise_error=False)  # what was handed over is written, then it goes on
            raise
        self.writer.wait()
        return reason

    def _epochs(self) -> str:
        t, st = self.cfg.train, self.state
        for cb in self.callbacks:
            cb.on_train_start(self)
        while st.epoch < t.epochs:
            epoch = st.epoch + 1
            start = time.perf_counter()
            n_steps_before = len(self.step_losses)
            train_loss, train_acc, diverged = self.train_epoch(epoch)
            if not self.schedule_per_step and not diverged:
                self.scheduler.step()  # schedule.per: epoch
            seconds = time.perf_counter() - start
            st.seconds += seconds
            st.initial_loss = self.guard.initial_loss
            if self.ranks.main and t.log_steps:
                rows = [
                    {"step": st.step - len(self.step_losses) + i + 1, "loss": v}
                    for i, v in enumerate(self.step_losses)
                    if i >= n_steps_before
                ]
                self.writer.submit(lambda rows=rows: self.run.append_jsonl(STEPS, rows))
            if diverged:
                st.epoch = epoch
                return "diverged"
            record = self.epoch_record(epoch, train_loss, train_acc, seconds)
            st.epoch = epoch
            val = (
                record["val_accuracy"]
                if record["val_accuracy"] is not None
                else -record["train_loss"]
            )
            improved = val > st.best_val
            if improved:
                st.best_val, st.best_epoch, st.bad_epochs = val, epoch, 0
            else:
                st.bad_epochs += 1
            stop = any([bool(cb.on_epoch_end(self, record)) for cb in self.callbacks])
            stop = self.ranks.any(stop)  # every rank stops where one callback says so
            ckpt = self.checkpoint()  # a sharded optimizer consolidates on rank 0 (all ranks)
            if self.ranks.main:  # rank 0 alone writes the run directory, in the background
                best = snapshot(self.best_weights()) if improved else None
                self.writer.submit(partial(self._write_epoch, record, best, snapshot(ckpt)))
            if stop:
                return "pruned"
            if t.patience is not None and st.bad_epochs >= t.patience:
                return "early_stopping"
        return "completed"
