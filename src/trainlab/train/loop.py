"""The training loop: minibatches, cross-entropy, optimizer step, schedule step, per-epoch
evaluation, callbacks. Every epoch ends with a checkpoint, so a killed run resumes where it was
and reaches the same numbers (randomness is re-derived from the seed and the epoch).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.config import ExperimentConfig, load_config, to_yaml, validate
from trainlab.data import Splits, prepare
from trainlab.errors import UserError
from trainlab.train.build import (
    WeightPenalty,
    make_optimizer,
    make_schedule,
    pick_device,
    schedule_used,
)
from trainlab.train.evaluate import evaluate
from trainlab.train.monitor import DivergenceGuard, advise
from trainlab.train.rundir import RunDir, environment, load_checkpoint, save_checkpoint
from trainlab.train.update_ratio import UpdateRatioMeter


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's randomness (shuffling, dropout, augmentation): a function of the
    run's seed and the epoch only, so a resumed run draws the same numbers."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch]).generate_state(1)[0])


@dataclass
class Result:
    """What a run reports (result.json and `--json`); accuracies are fractions in [0, 1]."""

    run_dir: str
    epochs: int
    best_epoch: int
    seconds: float
    train_accuracy: float
    val_accuracy: float
    test_accuracy: float
    test_loss: float
    stopped_reason: str  # completed | early_stopping | diverged | interrupted | pruned (search)
    steps: int = 0
    parameters: int = 0
    advice: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # ema_test_accuracy, tta_test_accuracy...

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "extra"}
        d.update(self.extra)
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        names = {f for f in cls.__dataclass_fields__ if f != "extra"}
        base = {
            k: (float("nan") if v is None and k.endswith(("accuracy", "loss")) else v)
            for k, v in d.items()
            if k in names
        }
        return cls(**base, extra={k: v for k, v in d.items() if k not in names})


class Callback:
    """Hooks into the loop; `on_epoch_end` returning True stops the run (pruning, for instance)."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, loss: float) -> None: ...

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> bool | None: ...

    def on_train_end(self, trainer: Trainer, result: Result) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class TrainState:
    epoch: int = 0  # last completed epoch
    step: int = 0
    best_val: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    seconds: float = 0.0
    initial_loss: float | None = None
    stopped_reason: str = "completed"


class Trainer:
    def __init__(
        self,
        cfg: ExperimentConfig,
        run_dir: RunDir,
        splits: Splits | None = None,
        callbacks: Sequence[Callback] = (),
        model: nn.Module | None = None,
        lr_mult: dict[str, float] | None = None,
    ) -> None:
        from trainlab.nn.models import build_model

        self.cfg, self.run = cfg, run_dir
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = pick_device(t.device)
        self.data = (splits or prepare(cfg.data)).to(self.device)
        torch.manual_seed(t.seed)  # model initialization
        self.model = (
            model or build_model(cfg.model, self.data.input_shape, self.data.num_classes)
        ).to(self.device)
        self.optimizer = make_optimizer(self.model, cfg, lr_mult)
        from trainlab.optim import FULL_BATCH

        self.full_batch = cfg.optim.name in FULL_BATCH
        n = len(self.data.x_train)
        self.steps_per_epoch = 1 if self.full_batch else math.ceil(n / t.batch_size)
        self.scheduler = make_schedule(self.optimizer, cfg, self.steps_per_epoch)
        # schedule.per: the scheduler moves after every optimizer step, or once after each epoch
        # (full-batch optimizers take one step per epoch, so both are the same there)
        self.schedule_per_step = cfg.schedule.per == "step" or self.full_batch
        self.penalty = WeightPenalty(self.model, t)
        self.augment = self._augmenter()
        self._check_tta()
        self.callbacks = list(callbacks)
        self.state = TrainState()
        self.guard = DivergenceGuard(factor=t.diverge_factor)
        self.step_losses: list[float] = []
        self.update_ratio = UpdateRatioMeter(list(self.model.parameters()), self.steps_per_epoch)
        self.write_curves = True  # curves.png at the end (train(..., curves=False) skips it)

    def _augmenter(self) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
        if not self.cfg.data.augment:
            return None
        from trainlab.data.augment import parse_augment

        aug = parse_augment(
            self.cfg.data.augment,
            self.data.kind,
            self.data.input_shape[0],
            self.data.input_shape[1:],
        )
        return aug.fit(self.data.x_train)

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

    # ---------------------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": dict(self.state.__dict__),
            "guard": self.guard.state_dict(),
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
        """(data loss + regularization, logits)."""
        logits = self.model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.train.label_smoothing)
        return (loss + self.penalty() if self.penalty.active else loss), logits

    def train_epoch(self, epoch: int) -> tuple[float, float, bool]:
        """One pass over the training split: (mean loss, running accuracy, diverged)."""
        seed = epoch_seed(self.cfg.train.seed, epoch)
        torch.manual_seed(seed)  # dropout, DropConnect, stochastic depth masks
        gen = torch.Generator(device="cpu").manual_seed(seed)
        self.model.train()
        x_all, y_all = self.data.x_train, self.data.y_train
        if self.full_batch:
            return self._full_batch_step(x_all, y_all)
        perm = torch.randperm(len(x_all), generator=gen).to(self.device)
        bs, total, count, seen = self.cfg.train.batch_size, 0.0, 0, 0
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        opt, sched, guard = self.optimizer, self.scheduler, self.guard
        for i in range(0, len(perm), bs):
            idx = perm[i : i + bs]
            self.update_ratio.before_step(i // bs)
            if len(idx) < 2 and self.cfg.model.norm == "batch":
                continue  # batch norm cannot normalize a batch of one
            x, y = x_all[idx], y_all[idx]
            if self.augment is not None:
                x = self.augment(x, gen)
            loss, logits = self.loss(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.update_ratio.after_step()
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            value = loss.item()
            self.state.step += 1
            self.step_losses.append(value)
            total, count = total + value, count + 1
            for cb in self.callbacks:  # they see the lr this step used
                cb.on_step_end(self, value)
            if self.schedule_per_step:
                sched.step()
            if guard.update(value):
                return value, float("nan"), True
        return total / max(count, 1), correct.item() / max(seen, 1), False

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
        val_loss, val_acc = evaluate(self.model, self.data.x_val, self.data.y_val)
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
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }

    def fit(self) -> str:
        """Train until the epochs run out, early stopping, divergence or a callback says stop."""
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
            self.run.append_jsonl(
                "steps.jsonl",
                [
                    {"step": st.step - len(self.step_losses) + i + 1, "loss": v}
                    for i, v in enumerate(self.step_losses)
                    if i >= n_steps_before
                ]
                if t.log_steps
                else [],
            )
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
            self.run.append_jsonl("metrics.jsonl", [record])
            if improved:
                save_checkpoint(self.run / "best.pt", self.best_weights())
            save_checkpoint(self.run / "last.pt", self.checkpoint())
            if stop:
                return "pruned"
            if t.patience is not None and st.bad_epochs >= t.patience:
                return "early_stopping"
        return "completed"


# ------------------------------------------------------------------------------------------- API
def callbacks_for(cfg: ExperimentConfig) -> list[Callback]:
    """The callbacks a config switches on (weight averaging, snapshots, TensorBoard)."""
    found: list[Callback] = []
    if cfg.train.ema is not None or cfg.train.snapshots:
        from trainlab.train.averaging import averaging_callbacks

        found += averaging_callbacks(cfg)
    if cfg.train.tensorboard:
        from trainlab.train.tensorboard import TensorBoardLogger

        found.append(TensorBoardLogger())
    return found


def as_config(
    config: ExperimentConfig | dict | str | Path, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    if isinstance(config, ExperimentConfig):
        if overrides:
            from trainlab.config import apply_overrides

            return validate(apply_overrides(config.model_dump(mode="json"), list(overrides)))
        return config
    if isinstance(config, dict):
        import copy

        from trainlab.config import apply_overrides

        # a deep copy: --set writes into nested sections, and the caller's dict must stay as it was
        return validate(apply_overrides(copy.deepcopy(config), list(overrides)))
    return load_config(config, overrides)


def finish(trainer: Trainer, reason: str) -> Result:
    """Restore the best weights, test them, write result.json and curves.png."""
    st, run = trainer.state, trainer.run
    metrics = run.read_jsonl("metrics.jsonl")
    best = next((m for m in metrics if m["epoch"] == st.best_epoch), None)
    if (run / "best.pt").exists():
        trainer.model.load_state_dict(load_checkpoint(run / "best.pt", trainer.device)["model"])
    test_loss, test_acc = evaluate(trainer.model, trainer.data.x_test, trainer.data.y_test)
    steps = [r["loss"] for r in run.read_jsonl("steps.jsonl")] or trainer.step_losses
    schedule, _, milestones = schedule_used(trainer.cfg)  # what the run did, not the config
    advice = advise(
        metrics,
        steps,
        num_classes=trainer.data.num_classes,
        schedule=schedule,
        milestones=milestones,
        diverged=reason == "diverged",
        diverge_factor=trainer.cfg.train.diverge_factor,
    )
    result = Result(
        run_dir=str(run.path),
        epochs=st.epoch,
        best_epoch=st.best_epoch,
        seconds=round(st.seconds, 3),
        train_accuracy=best["train_accuracy"] if best else float("nan"),
        val_accuracy=best["val_accuracy"] if best else float("nan"),
        test_accuracy=test_acc if best else float("nan"),
        test_loss=test_loss if best else float("nan"),
        stopped_reason=reason,
        steps=st.step,
        parameters=sum(p.numel() for p in trainer.model.parameters()),
        advice=[{"code": a.code, "message": a.message} for a in advice],
    )
    if trainer.cfg.train.tta != "none" and best:
        from trainlab.train.evaluate import tta_accuracy

        result.extra["tta_test_accuracy"] = tta_accuracy(
            trainer.model,
            trainer.data.x_test,
            trainer.data.y_test,
            trainer.cfg.train.tta,
            trainer.cfg.data.augment,
            trainer.data.kind,
        )
    for cb in trainer.callbacks:
        cb.on_train_end(trainer, result)
    run.write_json("result.json", result.to_dict())
    if not trainer.write_curves:  # search trials skip the plot
        return result
    from trainlab.report.curves import plot_curves

    plot_curves(
        metrics,
        steps,
        run / "curves.png",
        advice=result.advice,
        title=f"{trainer.cfg.model.kind} on {trainer.cfg.data.name}, "
        f"{trainer.cfg.optim.name} lr={trainer.cfg.optim.lr:g}",
    )
    return result


def train(
    config: ExperimentConfig | dict | str | Path,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overrides: Sequence[str] = (),
    callbacks: Sequence[Callback] = (),
    splits: Splits | None = None,
    model: nn.Module | None = None,
    lr_mult: dict[str, float] | None = None,
    curves: bool = True,
) -> Result:
    """Train one model as the config says and return its Result (the Python API of `train`).

    `out` is the run directory (default runs/<config stem>-<time>); an existing one is refused
    unless `resume`, which continues from its last checkpoint. `curves=False` skips curves.png.
    """
    from trainlab.train.rundir import default_run_dir

    cfg = as_config(config, overrides)
    config_path = config if isinstance(config, (str, Path)) else None
    if cfg.train.ensemble:  # N members into <run>/members/<i>/, then their ensemble
        from trainlab.train.ensemble import train_ensemble

        if model is not None:
            raise UserError(
                "train.ensemble: trains members from scratch; it cannot start from "
                "a given model (unset train.ensemble)"
            )
        return train_ensemble(
            cfg,
            out=out if out is not None else default_run_dir(config_path),
            resume=resume,
            callbacks=callbacks,
            splits=splits,
            lr_mult=lr_mult,
            curves=curves,
        )
    run = RunDir(out if out is not None else default_run_dir(config_path))
    resuming = run.create(resume)
    with run.lock():  # a second process writing this run directory gets one line, exit 2
        return _train_locked(cfg, run, resuming, callbacks, splits, model, lr_mult, curves)


def _train_locked(
    cfg: ExperimentConfig,
    run: RunDir,
    resuming: bool,
    callbacks: Sequence[Callback],
    splits: Splits | None,
    model: nn.Module | None,
    lr_mult: dict[str, float] | None,
    curves: bool,
) -> Result:
    """train() of one model, with the run directory created and locked."""
    if resuming:
        saved = (run / "config.yaml").read_text() if (run / "config.yaml").exists() else None
        if saved is not None and saved != to_yaml(cfg):
            raise UserError(
                f"--resume: the config differs from the one saved in {run.path}/"
                "config.yaml; resume with the same config and --set values"
            )
    callbacks = list(callbacks) + callbacks_for(cfg)
    trainer = Trainer(cfg, run, splits=splits, callbacks=callbacks, model=model, lr_mult=lr_mult)
    trainer.write_curves = curves
    if resuming and (run / "last.pt").exists():
        trainer.restore(load_checkpoint(run / "last.pt", trainer.device))
        done = trainer.state.epoch
        run.truncate_jsonl("metrics.jsonl", lambda r: r["epoch"] <= done)
        run.truncate_jsonl("steps.jsonl", lambda r: r["step"] <= trainer.state.step)
        trainer.step_losses = [r["loss"] for r in run.read_jsonl("steps.jsonl")]
        if trainer.state.stopped_reason in ("diverged", "early_stopping", "pruned") or (
            done >= cfg.train.epochs
        ):
            return finish(trainer, trainer.state.stopped_reason)
    elif resuming:
        for name in ("metrics.jsonl", "steps.jsonl"):
            (run / name).unlink(missing_ok=True)
    if not resuming or not (run / "config.yaml").exists():
        from trainlab.train.rundir import atomic_write_text

        atomic_write_text(run / "config.yaml", to_yaml(cfg))
    run.write_json("env.json", environment(trainer.device))
    try:
        reason = trainer.fit()
    except KeyboardInterrupt:
        finish(trainer, "interrupted")
        raise
    trainer.state.stopped_reason = reason
    if reason in ("diverged", "pruned", "early_stopping"):
        save_checkpoint(run / "last.pt", trainer.checkpoint())
    return finish(trainer, reason)
