"""Data handed to `trainlab.train(config, data=...)` directly, and how the run records it.

A function importable by name is recorded as data.name `module:qualname` (with data.args), so
`eval`, `ensemble` and `--resume` rebuild the data from the run directory alone. Anything else
(arrays, a Dataset, a lambda) trains, and is recorded as `python-object:<type>`: reading that
run's data back says in one line that it cannot be rebuilt.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from trainlab.config import ExperimentConfig, validate
from trainlab.data.dataset import AnySplits, prepare
from trainlab.data.plugins import call_data_function, from_object, import_dirs_of
from trainlab.plugins import UNIMPORTABLE, import_path_of


def given_data(cfg: ExperimentConfig, data: Any) -> tuple[ExperimentConfig, AnySplits]:
    """(the config with data.name naming `data`, the splits built from it)."""
    if callable(data) and not isinstance(data, Dataset):
        path = import_path_of(data)
        name = path or f"{UNIMPORTABLE}:{getattr(data, '__qualname__', 'function')}"
        out = call_data_function(data, cfg.data.args, name)
        dirs = import_dirs_of(data)
    else:
        name, out, dirs = f"{UNIMPORTABLE}:{type(data).__name__}", data, ()
    raw = cfg.model_dump(mode="json")
    raw["data"]["name"] = name.replace("<", "").replace(">", "")
    cfg = validate(raw)
    return cfg, prepare(cfg.data, source=from_object(out, cfg.data, dirs))
