"""One training run above the engine: the config's callbacks, resume, the finish (best weights
tested, advice, result.json, curves.png)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from trainlab.config import (
    ExperimentConfig,
    apply_overrides,
    is_plugin,
    load_config,
    to_yaml,
    validate,
)
from trainlab.data import AnySplits
from trainlab.engine.averaging import averaging_callbacks
from trainlab.engine.build import schedule_used
from trainlab.engine.checkpoints import environment, load_checkpoint, save_checkpoint
from trainlab.engine.distributed import current, session
from trainlab.engine.evaluate import evaluate_split, tta_accuracy_split
from trainlab.engine.state import Result
from trainlab.engine.tensorboard import TensorBoardLogger
from trainlab.engine.trainer import Callback, Trainer
from trainlab.errors import UserError
from trainlab.plugins import source_dir
from trainlab.report.advice import advise
from trainlab.report.curves import plot_curves
from trainlab.rundir import ENV, METRICS, RESULT, STEPS, RunDir, full_disk_is_resumable


def callbacks_for(cfg: ExperimentConfig, main: bool = True) -> list[Callback]:
    """The callbacks a config switches on (weight averaging, snapshots, TensorBoard; the last
    on rank 0 alone, which writes the run directory)."""
    found: list[Callback] = []
    if cfg.train.ema is not None or cfg.train.snapshots:
        found += averaging_callbacks(cfg)
    if cfg.train.tensorboard and main:
        found.append(TensorBoardLogger())
    return found


def as_config(
    config: ExperimentConfig | dict | str | Path, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """A validated config from a config object, a dict or a YAML path, with --set overrides."""
    if isinstance(config, ExperimentConfig):
        if overrides:
            return validate(apply_overrides(config.model_dump(mode="json"), list(overrides)))
        return config
    if isinstance(config, dict):
        # a deep copy: --set writes into nested sections, and the caller's dict must stay as it was
        return validate(apply_overrides(copy.deepcopy(config), list(overrides)))
    return load_config(config, overrides)


def finish(trainer: Trainer, reason: str) -> Result:
    """Restore the best weights, test them, write result.json and curves.png."""
    st, run = trainer.state, trainer.run
    metrics = run.read_jsonl(METRICS)
    best = next((m for m in metrics if m["epoch"] == st.best_epoch), None)
    if run.best.exists():
        trainer.model.load_state_dict(load_checkpoint(run.best, trainer.device)["model"])
    test_loss, test_acc = evaluate_split(trainer.model, trainer.data.test)
    steps = [r["loss"] for r in run.read_jsonl(STEPS)] or trainer.step_losses
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
        advice=[a.as_dict() for a in advice],
    )
    if trainer.cfg.train.tta != "none" and best:
        result.extra["tta_test_accuracy"] = tta_accuracy_split(
            trainer.model,
            trainer.data.test,
            trainer.cfg.train.tta,
            trainer.cfg.data.augment,
            trainer.data.kind,
        )
    for cb in trainer.callbacks:
        cb.on_train_end(trainer, result)
    run.write_json(RESULT, result.to_dict())
    if not trainer.write_curves:  # search trials skip the plot
        return result
    plot_curves(
        metrics,
        steps,
        run.curves,
        advice=result.advice,
        title=f"{trainer.cfg.model.kind} on {trainer.cfg.data.name}, "
        f"{trainer.cfg.optim.name} lr={trainer.cfg.optim.lr:g}",
    )
    return result


def train_single(
    cfg: ExperimentConfig,
    *,
    out: str | Path,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    splits: AnySplits | None = None,
    model: nn.Module | Callable[..., Any] | None = None,
    lr_mult: dict[str, float] | None = None,
    curves: bool = True,
    search_dirs: Sequence[str | Path] = (),
) -> Result | None:
    """Train one model into the run directory `out` (locked while it trains): start, or continue
    from its last checkpoint with `resume`; finish with the best weights tested.

    `model` is a network to train as is or a factory (called like a plugin model.kind);
    `search_dirs` are where plugins are looked up besides sys.path (the config file's folder),
    recorded in the run's plugins.json together with those of the run being resumed.

    Launched by torchrun (or `train(..., nproc=N)`), every process runs this: rank 0 alone
    creates, locks and writes the run directory; the others return None."""
    run = RunDir(out)
    with session(cfg.train.device) as ranks, contextlib.ExitStack() as stack:

        def start() -> tuple[bool, list[str], str | None]:
            # a failed start leaves no empty directory behind; a second process writing this
            # run directory gets one line, exit 2
            resuming = stack.enter_context(run.created(resume))
            stack.enter_context(run.lock())
            dirs = run.search_dirs(search_dirs, resuming)
            return resuming, dirs, saved_config(run, cfg, resuming)

        resuming, dirs, saved = ranks.on_main(start)  # a UserError of rank 0's on every rank
        with full_disk_is_resumable(run.path):  # a full disk is one line, exit 2
            return _train_in(
                cfg, run, resuming, saved, callbacks, splits, model, lr_mult, curves, dirs
            )


def uses_plugins(cfg: ExperimentConfig) -> bool:
    """Whether the config names a plugin (model.kind or data.name `module:name`)."""
    return any(is_plugin(n) for n in (cfg.model.kind, cfg.data.name))


def saved_config(run: RunDir, cfg: ExperimentConfig, resuming: bool) -> str | None:
    """The config.yaml of the run being resumed (None: a new run, or none saved yet, or one
    left empty by a kill); a different config is refused."""
    saved = run.read_config_text() if resuming else None
    if saved is not None and saved != to_yaml(cfg):
        raise UserError(
            f"--resume: the config differs from the one saved in {run.config}; "
            "resume with the same config and --set values"
        )
    return saved


def _train_in(
    cfg: ExperimentConfig,
    run: RunDir,
    resuming: bool,
    saved: str | None,
    callbacks: Sequence[Callback],
    splits: AnySplits | None,
    model: nn.Module | Callable[..., Any] | None,
    lr_mult: dict[str, float] | None,
    curves: bool,
    search_dirs: Sequence[str],
) -> Result | None:
    """train_single() with the run directory created and locked (on rank 0)."""
    ranks = current()
    callbacks = list(callbacks) + callbacks_for(cfg, ranks.main)
    trainer = Trainer(
        cfg,
        run,
        splits=splits,
        callbacks=callbacks,
        model=model,
        lr_mult=lr_mult,
        search_dirs=search_dirs,
    )
    trainer.write_curves = curves
    # every rank resumes from rank 0's last checkpoint (sent to the others: no shared disk needed)
    where = trainer.device if not ranks.many else "cpu"
    last = ranks.on_main(
        lambda: load_checkpoint(run.last, where) if resuming and run.last.exists() else None
    )
    if last is not None:
        trainer.restore(last)
        done = trainer.state.epoch
        if ranks.main:
            run.truncate_jsonl(METRICS, lambda r: r["epoch"] <= done)
            run.truncate_jsonl(STEPS, lambda r: r["step"] <= trainer.state.step)
            trainer.step_losses = [r["loss"] for r in run.read_jsonl(STEPS)]
        if trainer.state.stopped_reason in ("diverged", "early_stopping", "pruned") or (
            done >= cfg.train.epochs
        ):
            return finish(trainer, trainer.state.stopped_reason) if ranks.main else None
    if not ranks.main:
        return _train_rank(trainer)
    if resuming and last is None:
        for name in (METRICS, STEPS):
            (run / name).unlink(missing_ok=True)
    if saved is None:
        run.write_config(to_yaml(cfg))
    names = (cfg.model.kind, cfg.data.name)
    found = [d for n in names if is_plugin(n) and (d := source_dir(n))]  # also via cwd, sys.path
    run.record_plugin_dirs(tuple(dict.fromkeys([*search_dirs, *found])), uses_plugins(cfg))
    env = environment(trainer.device)
    if ranks.many:
        env["processes"] = ranks.world  # one run on many processes (torch.distributed)
    run.write_json(ENV, env)
    try:
        reason = trainer.fit()
    except KeyboardInterrupt:
        finish(trainer, "interrupted")
        raise
    trainer.state.stopped_reason = reason
    if reason in ("diverged", "pruned", "early_stopping"):
        save_checkpoint(run.last, trainer.checkpoint())
    return finish(trainer, reason)


def _train_rank(trainer: Trainer) -> None:
    """A rank other than 0: the same loop, nothing written (its checkpoint() calls are the
    collectives a sharded optimizer needs)."""
    reason = trainer.fit()
    trainer.state.stopped_reason = reason
    if reason in ("diverged", "pruned", "early_stopping"):
        trainer.checkpoint()
