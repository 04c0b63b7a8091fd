"""`trainlab ensemble RUN_DIR [RUN_DIR ...]`: average the predicted probabilities of trained runs
(the lecture's model ensembles) and report each member's and the ensemble's test accuracy.

`trainlab ensemble --study NAME_OR_DIR --top K` takes the K trials of a search study with the
best validation accuracy (diverged and interrupted trials left out): the lecture's "maybe with
different hyperparameters", the models a search leaves behind.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SEARCH_ROOT = Path("runs") / "search"
UNUSABLE = ("diverged", "interrupted")


def study_dir(name_or_dir: str, root: Path = SEARCH_ROOT) -> Path:
    """A study directory: a path as given when it exists, else NAME under runs/search/."""
    from trainlab.errors import UserError

    given = Path(name_or_dir)
    if given.is_dir():
        return given
    named = root / name_or_dir
    if named.is_dir():
        return named
    raise UserError(
        f"--study: no study directory {given} and no study named {name_or_dir!r} under {root}/"
    )


def top_trials(study: Path, k: int) -> list[Path]:
    """The k trial run directories of a study with the highest val_accuracy, best first."""
    from trainlab.errors import UserError

    trials = study / "trials"
    if not trials.is_dir():
        raise UserError(f"--study: {study} holds no trials/ folder (is it a search study?)")
    ranked: list[tuple[float, str, Path]] = []
    for d in sorted(p for p in trials.iterdir() if p.is_dir()):
        try:
            res = json.loads((d / "result.json").read_text())
        except (OSError, ValueError):
            continue  # a trial that never finished
        val = res.get("val_accuracy")
        if res.get("stopped_reason") in UNUSABLE or val is None or not (d / "best.pt").exists():
            continue
        ranked.append((-float(val), d.name, d))
    if not ranked:
        raise UserError(f"--study: {study} has no finished trial with a checkpoint to ensemble")
    ranked.sort()
    return [d for _, _, d in ranked[:k]]


def run_ensemble(
    run_dirs: list[str], study: str | None, top: int, checkpoint: str
) -> dict[str, Any]:
    from trainlab.errors import UserError
    from trainlab.experiments.ensemble import evaluate_runs

    if study is not None:
        if run_dirs:
            raise UserError("--study: give run directories or --study, not both")
        if top < 1:
            raise UserError(f"--top: must be at least 1, got {top}")
        found = study_dir(study)
        paths = top_trials(found, top)
        out = evaluate_runs(paths, checkpoint)
        out.update(study=str(found), top=top)
        return out
    if not run_dirs:
        raise UserError("RUN_DIR: give one or more run directories, or --study NAME --top K")
    return evaluate_runs(run_dirs, checkpoint)


def cmd_ensemble(args: argparse.Namespace) -> int:
    from rich.table import Table

    from trainlab.cli import console, emit_json, fmt_pct

    out = run_ensemble(args.run_dirs, args.study, args.top, args.checkpoint)
    title = f"ensemble of {out['size']} ({out['checkpoint']}, {out['examples']} test examples)"
    if out.get("study"):
        title += f", top {out['size']} of study {out['study']} by val accuracy"
    table = Table(title=title)
    for col, justify in (("member", "left"), ("val acc", "right"), ("test acc", "right")):
        table.add_column(col, justify=justify)
    for m in out["members"]:
        table.add_row(m["run_dir"], fmt_pct(m.get("val_accuracy")), fmt_pct(m["test_accuracy"]))
    table.add_section()
    table.add_row("mean of members", "", fmt_pct(out["mean_member_test_accuracy"]))
    table.add_row(
        "[bold]ensemble[/]",
        fmt_pct(out.get("val_accuracy")),
        f"[bold]{fmt_pct(out['test_accuracy'])}[/]",
    )
    c = console(args.json)
    c.print(table)
    if args.json:
        emit_json(out)
    return 0


def add_parser(sub) -> None:  # noqa: ANN001
    from trainlab.cli import add_common

    p = sub.add_parser(
        "ensemble",
        help="average the predictions of trained runs (or the best trials of a search study)",
    )
    p.add_argument(
        "run_dirs",
        nargs="*",
        metavar="RUN_DIR",
        help="run directories (an ensemble run stands for its members)",
    )
    p.add_argument(
        "--study",
        metavar="NAME_OR_DIR",
        help="ensemble the best trials of this study (a name under runs/search/)",
    )
    p.add_argument(
        "--top",
        type=int,
        default=5,
        metavar="K",
        help="with --study: how many trials, best val accuracy first (default 5)",
    )
    p.add_argument(
        "--checkpoint",
        default="best.pt",
        help="which weights of each run (default best.pt; ema.pt for Polyak averages)",
    )
    add_common(p)
    p.set_defaults(func=cmd_ensemble)
