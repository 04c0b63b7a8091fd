"""`trainlab search CONFIG`: hyperparameter search as the lecture teaches it.

One worker ("panda"): the running trial's validation curve is drawn live in the terminal. Several
workers ("caviar"): a live table of the trials. At the end: the leaderboard, the plots and
best.yaml in the study directory (`runs/search/<study>/`).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from trainlab.search.driver import Display

_BAR = 40


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _params(params: dict[str, Any]) -> str:
    return "  ".join(f"{k.split('.', 1)[-1]}={_fmt(v)}" for k, v in params.items())


class _Live(Display):
    """Common part: a rich Live region on the console (stderr with --json)."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.live: Any = None
        self.total = 0
        self.finished = 0
        self.best: tuple[int, float] | None = None
        self.study = ""

    def start(self, study: str, total: int, done: int, workers: int) -> None:
        from rich.live import Live

        self.study, self.total, self.finished = study, total, done
        self.live = Live(self.render(), console=self.console, refresh_per_second=4,
                         transient=True)  # fmt: skip
        self.live.start()

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())

    def trial_finished(self, number: int, state: str, value: float | None) -> None:
        if state != "retest":
            self.finished += 1
        if state == "complete" and value is not None and (
            self.best is None or value > self.best[1]
        ):
            self.best = (number, value)
        self.refresh()

    def headline(self) -> str:
        best = f"best: trial {self.best[0]} ({self.best[1]:.4f})" if self.best else "best: -"
        return f"[bold]{self.study}[/]  {self.finished}/{self.total} trials  {best}"

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def render(self) -> Any:
        raise NotImplementedError


class PandaDisplay(_Live):
    """Babysit one model: the running trial's validation accuracy, epoch by epoch, as bars
    against the best trial so far (the mark)."""

    def __init__(self, console: Any) -> None:
        super().__init__(console)
        self.number: int | None = None
        self.params: dict[str, Any] = {}
        self.epochs = 0
        self.curve: list[float | None] = []
        self.curves: dict[int, list[float | None]] = {}

    def trial_started(self, number: int, params: dict[str, Any], epochs: int) -> None:
        self.number, self.params, self.epochs, self.curve = number, params, epochs, []
        self.refresh()

    def epoch(self, number: int, epoch: int, value: float | None) -> None:
        self.curve.append(value)
        self.curves[number] = self.curve
        self.refresh()

    def render(self) -> Any:
        from rich.text import Text

        lines = [self.headline()]
        if self.number is not None:
            lines.append(f"trial {self.number}: {_params(self.params)}")
            ref = self.curves.get(self.best[0], []) if self.best else []
            for i, v in enumerate(self.curve[-15:], start=max(0, len(self.curve) - 15)):
                filled = 0 if v is None or not math.isfinite(v) else round(v * _BAR)
                bar = ["█"] * filled + ["·"] * (_BAR - filled)
                r = ref[i] if i < len(ref) else None
                if r is not None and math.isfinite(r):
                    bar[min(_BAR - 1, round(r * _BAR))] = "|"
                value = "-" if v is None else f"{v:.4f}"
                lines.append(f"epoch {i + 1:>3}/{self.epochs}  {''.join(bar)}  {value}")
            if ref:
                lines.append("[dim]| the best trial's validation accuracy at the same epoch[/]")
        return Text.from_markup("\n".join(lines))


class CaviarDisplay(_Live):
    """Many models at once: a table of the latest trials and their state."""

    def __init__(self, console: Any) -> None:
        super().__init__(console)
        self.rows: dict[int, dict[str, Any]] = {}

    def trial_started(self, number: int, params: dict[str, Any], epochs: int) -> None:
        self.rows[number] = {"params": params, "epochs": epochs, "epoch": 0, "value": None,
                             "state": "running"}  # fmt: skip
        self.refresh()

    def epoch(self, number: int, epoch: int, value: float | None) -> None:
        if number in self.rows:
            self.rows[number].update(epoch=epoch, value=value)
            self.refresh()

    def trial_finished(self, number: int, state: str, value: float | None) -> None:
        if number in self.rows:
            self.rows[number]["state"] = state
            if value is not None:
                self.rows[number]["value"] = value
        super().trial_finished(number, state, value)

    def render(self) -> Any:
        from rich.table import Table

        table = Table(title=self.headline(), title_justify="left")
        for col in ("trial", "state", "epoch", "val acc", "params"):
            table.add_column(col, justify="left" if col == "params" else "right")
        for number in sorted(self.rows)[-12:]:
            r = self.rows[number]
            value = "-" if r["value"] is None else f"{r['value']:.4f}"
            table.add_row(str(number), r["state"], f"{r['epoch']}/{r['epochs']}", value,
                          _params(r["params"]))  # fmt: skip
        return table


def leaderboard_table(result: dict[str, Any], top: int = 15) -> Any:
    from rich.table import Table

    rows = result["leaderboard"]
    paths: list[str] = []
    for r in rows:
        paths += [p for p in r["params"] if p not in paths]
    from rich import box

    table = Table(title=f"leaderboard of {result['study']} ({len(rows)} trials)",
                  box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    short = [p.split(".", 1)[-1] for p in paths]  # optim.lr -> lr, optim.betas.0 -> betas.0
    for col in ("rank", "trial", "val acc", *short, "epochs", "seconds", "state"):
        table.add_column(col, justify="right", overflow="fold")
    for r in rows[:top]:
        value = "-" if r["value"] is None else f"{r['value']:.4f}"
        table.add_row(str(r["rank"]), str(r["trial"]), value,
                      *[_fmt(r["params"].get(p, "-")) for p in paths],
                      str(r["epochs"] if r["epochs"] is not None else "-"),
                      "-" if r["seconds"] is None else f"{r['seconds']:.1f}", r["state"])
    return table  # fmt: skip


def cmd_search(args: argparse.Namespace) -> int:
    from trainlab.cli import console, emit_json
    from trainlab.search.driver import Driver, SearchOptions, plan

    options = SearchOptions(
        strategy=args.strategy, trials=args.trials, workers=args.workers,
        executor=args.executor, ray_address=args.ray_address, pruner=args.pruner,
        storage=args.storage, study=args.study, out=args.out, resume=args.resume,
        retest=args.retest, overrides=args.set, keep_all=args.keep_all,
    )  # fmt: skip
    p = plan(args.config, options)
    c = console(args.json)
    display = PandaDisplay(c) if p.search.workers == 1 else CaviarDisplay(c)
    result = Driver(p, options, display).run().to_dict()
    c.print(leaderboard_table(result))
    n = result["trials"]
    c.print(f"trials: {n['complete']} complete, {n['pruned']} pruned, {n['diverged']} diverged, "
            f"{n['failed']} failed in {result['seconds']:.1f} s")  # fmt: skip
    best = result["best"]
    if best:
        test = best.get("test_accuracy")
        c.print(f"best: trial {best['trial']}, validation accuracy {best['value']:.4f}"
                + (f", test accuracy {test:.4f}" if test is not None else ""))  # fmt: skip
        c.print(f"best config: {best['config_path']} (trainlab train {best['config_path']})",
                highlight=False)  # fmt: skip
    retest = result.get("retest")
    if retest and retest.get("mean") is not None:
        c.print(f"re-test of the best {len(retest['trials'])} with a new seed: validation "
                f"accuracy {retest['mean']:.4f} ± {retest['std']:.4f}")  # fmt: skip
    c.print(f"study directory: {result['study_dir']} (plots: params.png, curves.png)",
            highlight=False)  # fmt: skip
    if args.json:
        emit_json(result)
    return 0


def add_parser(sub) -> None:  # noqa: ANN001
    from trainlab.cli import add_common

    p = sub.add_parser("search", help="hyperparameter search (random, coarse-to-fine, ...)")
    p.add_argument("config", help="experiment config with a search: section (YAML)")
    p.add_argument("--strategy", choices=["grid", "random", "coarse-to-fine", "block", "tpe"])
    p.add_argument("--trials", type=int, help="the study's total number of trials")
    p.add_argument("--workers", type=int, help="trials at once (1: panda, N: caviar)")
    p.add_argument("--executor", choices=["local", "ray"])
    p.add_argument("--ray-address", help="a Ray cluster (default: start a local one)")
    p.add_argument("--pruner", choices=["none", "median", "halving"])
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///runs/trainlab.db)")
    p.add_argument("--study", help="study name (default: the config's file name)")
    p.add_argument("--out", help="study directory (default runs/search/<study>)")
    p.add_argument("--resume", action="store_true", help="continue the study to --trials")
    p.add_argument("--retest", type=int, metavar="K",
                   help="re-run the best K configs with a new seed; report mean and spread")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the base experiment, e.g. train.epochs=5 (repeatable)")
    p.add_argument("--keep-all", action="store_true",
                   help="keep every file of each trial (default: best.pt, result.json, "
                        "config.yaml, metrics.jsonl)")
    add_common(p)
    p.set_defaults(func=cmd_search)
