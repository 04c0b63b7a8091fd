"""A model handed over in Python, `trainlab.train(config, model=...)`, and the model.kind its run
directory records so that eval, ensemble, transfer and --resume can rebuild it.

- A factory importable back by `module:qualname` becomes model.kind (built like any plugin).
- A factory that is not (a lambda, a local function, one defined in `__main__`) trains, and its
  run records `python-object:<name>`: rebuilding it says in one line how to fix that.
- An nn.Module instance trains as is. Its constructor's arguments are unknown, so it is recorded
  as `python-object:<class>` too, unless the config's model.kind already says how to build it
  (a plugin, or a trainlab `Net` built from the config). A factory is the way to a rebuildable run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from trainlab.config import ExperimentConfig, is_plugin
from trainlab.errors import UserError
from trainlab.experiments.single import as_config
from trainlab.nn.models import Net
from trainlab.nn.plugins import Factory
from trainlab.plugins import UNIMPORTABLE, import_path_of


def _set_model(section: dict[str, Any] | str) -> str:
    """A --set item for model (a section) or model.kind (a string), JSON-quoted for the parser."""
    if isinstance(section, str):
        return f"model.kind={json.dumps(section)}"
    return f"model={json.dumps(section)}"


def config_for_model(
    config: ExperimentConfig | dict | str | Path,
    overrides: Sequence[str],
    model: nn.Module | Factory | None,
) -> tuple[ExperimentConfig, nn.Module | Factory | None]:
    """The validated config recording how to rebuild `model`, and what the trainer gets: the
    module, an unimportable factory, or None (the model is built from model.kind)."""
    if model is None:
        return as_config(config, overrides), None
    if isinstance(model, nn.Module):
        cfg = as_config(config, overrides)
        if is_plugin(cfg.model.kind) or isinstance(model, Net):
            return cfg, model
        recorded = {"kind": f"{UNIMPORTABLE}:{type(model).__qualname__}"}
        return as_config(cfg, [_set_model(recorded)]), model
    if not callable(model):
        raise UserError(
            "model: must be an nn.Module or a factory called as factory(input_shape, "
            f"num_classes, **model.args), got a {type(model).__name__}"
        )
    path = import_path_of(model)
    name = getattr(model, "__qualname__", type(model).__name__)
    cfg = as_config(config, [*overrides, _set_model(path or f"{UNIMPORTABLE}:{name}")])
    return cfg, None if path else model


def factory_override(model: Any) -> str:
    """The --set item naming a factory by its import path, for `trainlab.search(config,
    model=factory)`: its workers import the model by name, so a factory that cannot be imported
    back (a lambda, a local function, one defined in __main__) is refused in one line."""
    path = import_path_of(model) if callable(model) and not isinstance(model, nn.Module) else None
    if path is None:
        raise UserError(
            "model: a search's workers import the model by name; pass a factory defined in an "
            "importable module (not __main__, not a lambda or local function), or set "
            "model.kind: module:factory in the config"
        )
    return _set_model(path)
