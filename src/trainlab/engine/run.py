"""Reading a finished run back: its config, metrics, result, checkpoints and best model."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.config import ExperimentConfig, read_yaml, validate
from trainlab.data import Normalizer, Splits, prepare
from trainlab.engine.checkpoints import load_checkpoint
from trainlab.engine.state import Result
from trainlab.errors import UserError
from trainlab.nn.models import build_model
from trainlab.rundir import BEST, CONFIG, METRICS, RESULT, RunDir


@dataclass
class Run:
    """A run directory, read back. `model()` rebuilds the network with the best weights."""

    path: Path

    @cached_property
    def files(self) -> RunDir:
        """The run directory's files (trainlab.rundir names them)."""
        return RunDir(self.path)

    @cached_property
    def config(self) -> ExperimentConfig:
        return validate(read_yaml(self.files.config))

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return self.files.read_jsonl(METRICS)

    @property
    def result(self) -> Result | None:
        found = self.files.result.exists()
        return Result.from_dict(self.files.read_json(RESULT)) if found else None

    @property
    def search_dirs(self) -> tuple[str, ...]:
        """Where the run's plugins were looked up besides sys.path (its plugins.json)."""
        return self.files.plugin_dirs()

    def checkpoint(self, name: str = BEST) -> dict[str, Any]:
        return load_checkpoint(self.files / name)

    def model(self, name: str = BEST, device: str | torch.device = "cpu") -> nn.Module:
        ckpt = load_checkpoint(self.files / name, device)
        model = build_model(
            self.config.model, tuple(ckpt["input_shape"]), ckpt["num_classes"], self.search_dirs
        )
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise UserError(
                f"run: checkpoint {self.files / name} does not fit the model of its "
                f"{CONFIG} ({str(err).splitlines()[0]})"
            ) from None
        return model.to(device).eval()

    def normalizer(self, name: str = BEST) -> Normalizer:
        return Normalizer.from_state(load_checkpoint(self.files / name)["normalizer"])

    def splits(self) -> Splits:
        """The run's data, normalized with the statistics saved with its model (a transfer run
        keeps the pretrained network's, which a fresh fit on its data would not give)."""
        splits = prepare(self.config.data, search_dirs=self.search_dirs)
        if self.files.best.exists():
            splits = splits.normalized_as(self.normalizer())
        return splits


def load_run(path: str | Path) -> Run:
    """Open a run directory written by `trainlab.train` (refuses one with no config)."""
    p = Path(path)
    if not RunDir(p).exists():
        raise UserError(f"run: {p} is not a run directory (no {CONFIG})")
    return Run(p)
