"""The Python API in one place: what `trainlab` exports, each CLI command's Python form.

- `train(config, model=, data=, out=, ...) -> Result`: one run, or an ensemble
  (`train.ensemble`); `trainlab train`
- `evaluate(run_dir, data_path=, tta=)`: a finished run on its test split or new data;
  `trainlab eval`
- `load_run(run_dir) -> Run`: a run read back (config, metrics, result, model)
- `search_config(config, **options)`: the search of a config's `search:` section;
  `trainlab search`
- `optimize(objective, space, ...)`: search over any objective (ask/tell:
  `trainlab.search.Search`)
- `compare(configs, seeds=, ...)`: paired seeds, verdicts with confidence intervals;
  `trainlab compare`
- `ensemble(runs, study=, top=)`: the average of trained runs' predictions; `trainlab ensemble`
- `transfer(source, config, mode=, ...)`: a trained network on new data, new head, frozen or
  fine-tuned; `trainlab transfer`
- `lr_find(config, steps=, ...)`: the learning-rate range test and its picture;
  `trainlab lr-find`

`import trainlab` loads none of this (nor torch): the package's names are looked up here on
first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainlab.engine.run import Run as Run
from trainlab.engine.run import load_run as _load_run
from trainlab.engine.state import Result as Result
from trainlab.engine.trainer import Callback as Callback
from trainlab.errors import UserError, worded_for_python
from trainlab.experiments.api import evaluate_run as _evaluate
from trainlab.experiments.api import train as _train
from trainlab.experiments.compare import compare as _compare
from trainlab.experiments.ensemble import evaluate_runs
from trainlab.experiments.lr_find import run_lr_find
from trainlab.experiments.transfer import transfer as _transfer
from trainlab.rundir import BEST
from trainlab.search import study as studies
from trainlab.search.optimize import optimize as _optimize
from trainlab.search.running.driver import search as _search

# the list of the API's names is trainlab.API. Each function raises its mistakes naming the
# Python argument (out: ..., pass resume=True), and the CLI's flags when the CLI calls it.
train = worded_for_python(_train)
evaluate = worded_for_python(_evaluate)
load_run = worded_for_python(_load_run)
search_config = worded_for_python(_search)
optimize = worded_for_python(_optimize)
compare = worded_for_python(_compare)
transfer = worded_for_python(_transfer)


@worded_for_python
def ensemble(
    runs: Sequence[str | Path] = (),
    *,
    study: str | None = None,
    top: int = 5,
    checkpoint: str = BEST,
    storage: str = studies.DEFAULT_STORAGE,
) -> dict[str, Any]:
    """Average the predicted probabilities of trained `runs`, or of the `top` trials of a search
    `study` (its leaderboard order); returns what `trainlab ensemble --json` prints."""
    if study is not None:
        if runs:
            raise UserError("--study: give run directories or --study, not both")
        if top < 1:
            raise UserError(f"--top: must be at least 1, got {top}")
        found, paths = studies.top_run_dirs(storage, study, top)
        out = evaluate_runs(paths, checkpoint)
        out.update(study=str(found), top=top)
        return out
    if not runs:
        raise UserError("RUN_DIR: give one or more run directories, or --study NAME --top K")
    return evaluate_runs([str(r) for r in runs], checkpoint)


@worded_for_python
def lr_find(
    config: str | Path,
    *,
    overrides: Sequence[str] = (),
    steps: int = 200,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """The learning-rate range test on the config's model, optimizer and data: loss against a
    learning rate growing exponentially from `start_lr` to `end_lr` over `steps` minibatches,
    the suggested lr, and the picture (default runs/lr-find/<config stem>.png)."""
    return run_lr_find(
        str(config), list(overrides), steps, start_lr, end_lr, None if out is None else str(out)
    )
