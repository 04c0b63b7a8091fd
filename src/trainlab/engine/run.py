"""Reading a finished run back: its config, metrics, result, checkpoints and best model.

`Run.model()` predicts raw inputs as `trainlab eval` does: the training normalization travels
with it (NormalizedModel); `Run.network()` is the bare network, which expects inputs already
normalized with the run's statistics (as `Run.splits()` gives them). A run trained on a model
object that cannot be rebuilt loads into the user's own module (`module=`).
"""

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
from trainlab.nn.plugins import load_factory
from trainlab.rundir import BEST, CONFIG, METRICS, RESULT, RunDir


class NormalizedModel(nn.Module):
    """x -> network((x - mean) / std): a trained network that takes raw inputs. The statistics
    are those of the training split, saved with the weights (trainlab.data.Normalizer)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, network: nn.Module, normalizer: Normalizer) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("mean", normalizer.mean.detach().clone())
        self.register_buffer("std", normalizer.std.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network((x.to(self.mean.dtype) - self.mean) / self.std)


@dataclass
class Run:
    """A run directory, read back. `model()` rebuilds the network with the best weights and the
    training normalization (raw inputs in); `network()` is the bare network."""

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

    def network(
        self,
        name: str = BEST,
        device: str | torch.device = "cpu",
        module: nn.Module | str | None = None,
    ) -> nn.Module:
        """The bare network with the checkpoint's weights, in eval mode: it expects inputs
        normalized as in training (`splits()`); `model()` takes raw inputs.

        `module` is where the weights go instead of the network model.kind rebuilds: your own
        nn.Module instance (of the class that was trained), or the import path of a factory,
        "pkg.module:factory", called as factory(input_shape, num_classes, **model.args) (how a
        run trained on a model object is loaded back: its model.kind cannot be rebuilt)."""
        return self._load(name, device, module)[0]

    def _load(
        self, name: str, device: str | torch.device, module: nn.Module | str | None
    ) -> tuple[nn.Module, dict[str, Any]]:
        """The network (see `network`) and the checkpoint it was loaded from."""
        ckpt = load_checkpoint(self.files / name, device)
        shape, classes = tuple(ckpt["input_shape"]), int(ckpt["num_classes"])
        if isinstance(module, nn.Module):
            network, given = module, f"the module given ({type(module).__qualname__})"
        elif isinstance(module, str):
            network, given = self._from_factory(module, shape, classes), module
        elif module is None:
            network = build_model(self.config.model, shape, classes, self.search_dirs)
            given = f"the model of its {CONFIG}"
        else:
            raise UserError(
                "model: module= takes an nn.Module or the import path of a factory "
                f"(pkg.module:factory), got a {type(module).__name__}"
            )
        try:
            network.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise UserError(
                f"run: checkpoint {self.files / name} does not fit {given} "
                f"({str(err).splitlines()[0]})"
            ) from None
        return network.to(device).eval(), ckpt

    def _from_factory(self, path: str, shape: tuple[int, ...], classes: int) -> nn.Module:
        """The network of the factory `path` names (eval --model); mistakes name --model."""
        if ":" not in path:
            raise UserError(f"--model: give a factory as pkg.module:factory, got {path!r}")
        try:
            factory = load_factory(path, self.search_dirs)
            return build_model(self.config.model, shape, classes, self.search_dirs, factory)
        except UserError as err:
            raise UserError(f"--model: {str(err).partition(': ')[2]}") from None

    def model(
        self,
        name: str = BEST,
        device: str | torch.device = "cpu",
        module: nn.Module | str | None = None,
    ) -> NormalizedModel:
        """The network with the checkpoint's weights and the training normalization in front, in
        eval mode: it takes raw inputs (the run's input shape, as in its data source) and
        predicts them exactly as `trainlab eval` does. `.network` is the bare network, `.mean`
        and `.std` are buffers (they move with `.to(device)` and save with `state_dict()`).
        `module`: your own nn.Module instance or a factory's import path (see `network`)."""
        network, ckpt = self._load(name, device, module)
        normalizer = Normalizer.from_state(ckpt["normalizer"])
        return NormalizedModel(network, normalizer).to(device).eval()

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
