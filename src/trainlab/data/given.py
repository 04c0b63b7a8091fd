"""Data handed over in Python, `trainlab.train(config, data=...)` or `trainlab.search(config,
data=...)`, and the data.name its run records.

A function importable by name is recorded as data.name `module:qualname` (with data.args), so
`eval`, `ensemble` and `--resume` rebuild the data from the run directory alone. Anything else
(arrays, a Dataset, a lambda) trains, and is recorded as `python-object:<type>`: reading that
run's data back says in one line that it cannot be rebuilt.
"""

from __future__ import annotations

import json
from typing import Any

from torch.utils.data import Dataset

from trainlab.config import DataConfig
from trainlab.data.dataset import AnySplits, prepare
from trainlab.data.plugins import call_data_function, from_object, import_dirs_of
from trainlab.errors import UserError
from trainlab.plugins import UNIMPORTABLE, import_path_of


def _is_function(data: Any) -> bool:
    return callable(data) and not isinstance(data, Dataset)


def data_name(data: Any) -> str:
    """The data.name a run trained on `data` records: its import path, or python-object:..."""
    if _is_function(data):
        path = import_path_of(data)
        if path:
            return path
        name = getattr(data, "__qualname__", "function")
    else:
        name = type(data).__name__
    return f"{UNIMPORTABLE}:{name.replace('<', '').replace('>', '')}"


def data_override(data: Any, searching: bool = False) -> str:
    """The --set item recording `data` as data.name (applied before the config is validated,
    so data.args may be set beside it). A search's workers import the data by name: there an
    object that cannot be imported back is refused in one line."""
    name = data_name(data)
    if searching and name.startswith(f"{UNIMPORTABLE}:"):
        raise UserError(
            "data: a search's workers import the data by name; pass a data function defined "
            "in an importable module (not __main__, not a lambda or local function), or set "
            "data.name in the config"
        )
    return f"data.name={json.dumps(name)}"


def given_splits(cfg: DataConfig, data: Any) -> AnySplits:
    """The splits of `data`: a function is called with data.args, other objects taken as are."""
    if _is_function(data):
        out = call_data_function(data, cfg.args, cfg.name)
        return prepare(cfg, source=from_object(out, cfg, import_dirs_of(data)))
    return prepare(cfg, source=from_object(data, cfg))
