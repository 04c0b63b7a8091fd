"""Reading a finished run back: its config, metrics, result and best model; evaluating it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.config import ExperimentConfig, read_yaml, validate
from trainlab.data import Normalizer, Splits
from trainlab.errors import UserError
from trainlab.train.evaluate import evaluate
from trainlab.train.loop import Result
from trainlab.train.rundir import RunDir, load_checkpoint


@dataclass
class Run:
    """A run directory, read back. `model()` rebuilds the network with the best weights."""

    path: Path

    @cached_property
    def config(self) -> ExperimentConfig:
        return validate(read_yaml(self.path / "config.yaml"))

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return RunDir(self.path).read_jsonl("metrics.jsonl")

    @property
    def result(self) -> Result | None:
        p = self.path / "result.json"
        return Result.from_dict(RunDir(self.path).read_json("result.json")) if p.exists() else None

    def checkpoint(self, name: str = "best.pt") -> dict[str, Any]:
        return load_checkpoint(self.path / name)

    def model(self, name: str = "best.pt", device: str | torch.device = "cpu") -> nn.Module:
        from trainlab.nn.models import build_model

        ckpt = load_checkpoint(self.path / name, device)
        model = build_model(self.config.model, tuple(ckpt["input_shape"]), ckpt["num_classes"])
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise UserError(
                f"run: checkpoint {self.path / name} does not fit the model of its "
                f"config.yaml ({str(err).splitlines()[0]})"
            ) from None
        return model.to(device).eval()

    def normalizer(self, name: str = "best.pt") -> Normalizer:
        return Normalizer.from_state(load_checkpoint(self.path / name)["normalizer"])

    def splits(self) -> Splits:
        """The run's data, normalized with the statistics saved with its model (a transfer run
        keeps the pretrained network's, which a fresh fit on its data would not give)."""
        from trainlab.data import prepare

        splits = prepare(self.config.data)
        if (self.path / "best.pt").exists():
            splits = splits.normalized_as(self.normalizer())
        return splits


def load_run(path: str | Path) -> Run:
    """Open a run directory written by `trainlab.train` (refuses one with no config)."""
    p = Path(path)
    if not (p / "config.yaml").is_file():
        raise UserError(f"run: {p} is not a run directory (no config.yaml)")
    return Run(p)


def evaluate_run(
    path: str | Path, data_path: str | None = None, tta: str | None = None
) -> dict[str, Any]:
    """Accuracy and loss of a run's best model on its test split or on new data of that shape
    (of a `train.ensemble` run: its members' averaged probabilities)."""
    from trainlab.data.dataset import load_inputs_for

    run = load_run(path)
    if not (run.path / "best.pt").exists() and (run.path / "members").is_dir():
        if tta not in (None, "none"):
            raise UserError(
                "--tta: not available for an ensemble run; evaluate a member "
                f"({run.path}/members/0) with --tta"
            )
        from trainlab.train.ensemble import evaluate_ensemble_run

        return evaluate_ensemble_run(run.path, data_path)
    model = run.model()
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
    else:
        splits = run.splits()
        x, y, label = splits.x_test, splits.y_test, "test split"
    loss, acc = evaluate(model, x, y)
    out = {
        "run_dir": str(run.path),
        "data": label,
        "examples": len(y),
        "loss": loss,
        "accuracy": acc,
    }
    mode = tta if tta is not None else run.config.train.tta
    if mode != "none":
        from trainlab.train.evaluate import tta_accuracy

        kind = "signal" if x.dim() == 3 else "image" if x.dim() == 4 else "vector"
        out.update(
            tta=mode, tta_accuracy=tta_accuracy(model, x, y, mode, run.config.data.augment, kind)
        )
    return out
