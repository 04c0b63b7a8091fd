"""The Python API above the engine: `train(config)` (one model, or the members of
`train.ensemble` and their ensemble) and `evaluate_run(dir)`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from trainlab.config import ExperimentConfig
from trainlab.data import AnySplits, Normalizer
from trainlab.data.dataset import load_inputs_for
from trainlab.data.given import data_override, given_splits
from trainlab.engine.distributed import launched, launched_main
from trainlab.engine.evaluate import evaluate, evaluate_split, tta_accuracy, tta_accuracy_split
from trainlab.engine.run import load_run
from trainlab.engine.state import Result
from trainlab.engine.trainer import Callback
from trainlab.errors import UserError
from trainlab.experiments.ensemble import evaluate_ensemble_run, train_ensemble
from trainlab.experiments.given_model import config_for_model
from trainlab.experiments.launch import launch
from trainlab.experiments.progress import EpochProgress
from trainlab.experiments.single import as_config, train_single
from trainlab.nn.plugins import Factory
from trainlab.report.progress import open_view, shows
from trainlab.rundir import config_dirs, default_run_dir

ENSEMBLE_ON_MANY = (
    "train.ensemble: trains its members one after another in one process; drop --nproc / "
    "torchrun, or train the members as separate runs"
)


def train(
    config: ExperimentConfig | dict | str | Path,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overrides: Sequence[str] = (),
    callbacks: Sequence[Callback] = (),
    splits: AnySplits | None = None,
    model: nn.Module | Factory | None = None,
    lr_mult: dict[str, float] | None = None,
    curves: bool = True,
    data: Any = None,
    search_dirs: Sequence[str | Path] = (),
    nproc: int | None = None,
    verbose: bool | None = None,
) -> Result | None:
    """Train one model as the config says and return its Result (the Python API of `train`).

    `out` is the run directory (default runs/<config stem>-<time>); an existing one is refused
    unless `resume`, which continues from its last checkpoint. `curves=False` skips curves.png.
    `data` is the user's data instead of data.name: a function (called with data.args), (x, y)
    arrays, a torch Dataset or a mapping of train/val/test (trainlab.data.plugins).
    `model` is the user's model instead of model.kind: a factory (called as
    `factory(input_shape, num_classes, **model.args)`) or an nn.Module trained as is
    (experiments.given_model says what the run records). Plugins are looked up on sys.path, in
    `search_dirs`, the config file's folder and the current directory. Progress (a bar per
    epoch in a terminal, an updating line in a notebook: trainlab.report.progress) shows unless
    `verbose=False`; None shows it when stderr is a terminal or in a notebook.

    `nproc=N` trains on N local processes with torch.distributed (experiments/launch.py):
    `train.batch_size` is the global batch, rank 0 writes the run; every argument must pickle.
    Under torchrun each process calls train() as it is: rank 0 gets the Result, the others None.
    """
    if nproc is not None:
        if nproc < 1:
            raise UserError(f"--nproc: must be at least 1, got {nproc}")
        if as_config(config, overrides).train.ensemble:  # before any process starts
            raise UserError(ENSEMBLE_ON_MANY)
        return _launch(locals(), nproc)
    if data is not None:
        if splits is not None:
            raise UserError("data: give data= or splits=, not both")
        overrides = [*overrides, data_override(data)]
    cfg, model = config_for_model(config, overrides, model)
    if data is not None:
        splits = given_splits(cfg.data, data)
    config_path = config if isinstance(config, (str, Path)) else None
    out = out if out is not None else default_run_dir(config_path)
    if config_path is not None:
        search_dirs = [*search_dirs, *config_dirs(config_path)]
    if cfg.train.ensemble and launched():
        raise UserError(ENSEMBLE_ON_MANY)
    if not launched_main():
        verbose = False  # one progress view for a run on many processes: rank 0's
    view = open_view(cfg.train.epochs, "train", verbose)
    callbacks = [*callbacks, EpochProgress(view)] if shows(verbose) else callbacks
    common = dict(resume=resume, callbacks=callbacks, splits=splits, lr_mult=lr_mult, curves=curves)
    common["search_dirs"] = search_dirs
    with view:
        return _train(cfg, out, model, common)


def _train(cfg: ExperimentConfig, out: str | Path, model: Any, common: dict[str, Any]) -> Result:
    """train() with its arguments resolved: one model, or the members of an ensemble."""
    if cfg.train.ensemble:  # N members into <run>/members/<i>/, then their ensemble
        if isinstance(model, nn.Module):
            raise UserError(
                "train.ensemble: trains members from scratch; it cannot start from "
                "a given model (unset train.ensemble)"
            )
        if model is not None:
            raise UserError(
                "train.ensemble: its members are rebuilt from the run directory, which needs a "
                "factory importable by module:name; define it in a module (not __main__, not a "
                "lambda or local function)"
            )
        return train_ensemble(cfg, out=out, **common)
    return train_single(cfg, out=out, model=model, **common)


def _launch(arguments: dict[str, Any], nproc: int) -> Result:
    """train(**arguments) on `nproc` processes; the run directory is named here, so that
    every process writes (rank 0) and resumes the same one."""
    arguments = {k: v for k, v in arguments.items() if k != "nproc"}
    if arguments["out"] is None:
        config = arguments["config"]
        arguments["out"] = default_run_dir(config if isinstance(config, (str, Path)) else None)
    if arguments["callbacks"] and not isinstance(arguments["callbacks"], list):
        arguments["callbacks"] = list(arguments["callbacks"])
    return launch(train, arguments, nproc)


def evaluate_run(
    path: str | Path,
    data_path: str | None = None,
    tta: str | None = None,
    model: nn.Module | str | None = None,
) -> dict[str, Any]:
    """Accuracy and loss of a run's best model on its test split or on new data of that shape
    (of a `train.ensemble` run: its members' averaged probabilities). `model` loads the weights
    into your own module or a factory's import path instead (`Run.network(module=)`): how a run
    trained on a model object is evaluated."""
    run = load_run(path)
    if run.files.is_ensemble():
        if model is not None:
            raise UserError("--model: not for an ensemble run; evaluate a member with --model")
        if tta not in (None, "none"):
            raise UserError(
                "--tta: not available for an ensemble run; evaluate a member "
                f"({run.files.member(0).path}) with --tta"
            )
        return evaluate_ensemble_run(run.path, data_path)
    network = run.network(module=model)  # the data below is normalized as in training
    ckpt = run.checkpoint()
    if data_path:
        x, y = load_inputs_for(
            data_path,
            tuple(ckpt["input_shape"]),
            Normalizer.from_state(ckpt["normalizer"]),
            run.config.data.resize,
        )
        if len(y) and int(y.max()) >= ckpt["num_classes"]:
            raise UserError(
                f"--data-path: labels go up to {int(y.max())}, the model knows "
                f"{ckpt['num_classes']} classes"
            )
        label = str(data_path)
        loss, acc = evaluate(network, x, y)
        kind = "signal" if x.dim() == 3 else "image" if x.dim() == 4 else "vector"
    else:
        splits = run.splits()
        split, label, kind = splits.test, "test split", splits.kind
        loss, acc = evaluate_split(network, split)
    out = {
        "run_dir": str(run.path),
        "data": label,
        "examples": len(y) if data_path else len(split),
        "loss": loss,
        "accuracy": acc,
    }
    mode = tta if tta is not None else run.config.train.tta
    if mode != "none":
        augment = run.config.data.augment
        out.update(
            tta=mode,
            tta_accuracy=tta_accuracy(network, x, y, mode, augment, kind)
            if data_path
            else tta_accuracy_split(network, split, mode, augment, kind),
        )
    return out
