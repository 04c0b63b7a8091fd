"""`trainlab search CONFIG`: hyperparameter search as the lecture teaches it.

One worker ("panda"): the running trial's validation curve is drawn live in the terminal. Several
workers ("caviar"): a live table of the trials. At the end: the leaderboard, the plots and
best.yaml in the study directory (`runs/search/<study>/`).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from typing import Any

from trainlab import names
from trainlab.commands.dashboard import hint as dashboard_hint
from trainlab.commands.dashboard import storage_hint
from trainlab.commands.output import add_common, console, emit_json
from trainlab.commands.tables import frac, num, print_table, readable, seconds, table
from trainlab.rundir import DEFAULT_STORAGE
from trainlab.search.running.display import Display, best_of

_BAR = 40


def _short(path: str) -> str:
    """optim.lr -> lr, optim.betas.0 -> betas.0 (the section is clear from the name)."""
    return path.split(".", 1)[-1]


def _params(params: dict[str, Any]) -> str:
    return "  ".join(f"{_short(k)}={num(v)}" for k, v in params.items())


class _Live(Display):
    """Common part: a rich Live region on the console (stderr with --json)."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.live: Any = None
        self.total = 0
        self.finished = 0
        self.best: tuple[int, float] | None = None
        self.study = ""
        self.retests: tuple[int, int] | None = None  # (done, total) once the re-test starts
        self.hint = ""  # the dashboard command, printed when the search starts

    def note(self, message: str) -> None:
        self.console.print(f"note: {message}", highlight=False)

    def start(
        self,
        study: str,
        total: int,
        done: int,
        workers: int,
        best: tuple[int, float] | None = None,
    ) -> None:
        from rich.live import Live

        self.study, self.total, self.finished, self.best = study, total, done, best
        if self.hint:
            sys.stderr.write(self.hint + "\n")
        self.live = Live(self.render(), console=self.console, refresh_per_second=4, transient=True)
        self.live.start()

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())

    def trial_finished(
        self, number: int, state: str, value: float | None, finished: int | None = None
    ) -> None:
        self.finished = self.finished + 1 if finished is None else finished
        self.best = best_of(self.best, number, state, value)
        if not self.console.is_terminal:  # a log has no live region: one line per trial
            self.console.print(
                f"trial {number}: {state}, val acc {frac(value)} "
                f"({self.finished}/{self.total} trials)",
                highlight=False,
            )
        self.refresh()

    def retest_begin(self, total: int, done: int) -> None:
        self.retests = (done, total)
        self.refresh()

    def retest_finished(self, trial: int, seed: int, value: float | None) -> None:
        if self.retests is not None:
            self.retests = (self.retests[0] + 1, self.retests[1])
        self.refresh()

    def headline(self) -> str:
        best = f"best: trial {self.best[0]} ({frac(self.best[1])})" if self.best else "best: -"
        line = f"[bold]{self.study}[/]  {self.finished}/{self.total} trials  {best}"
        if self.retests is not None:
            line += f"  re-tests: {self.retests[0]}/{self.retests[1]}"
        return line

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
        self.label = ""  # set while a re-test runs

    def trial_started(self, number: int, params: dict[str, Any], epochs: int) -> None:
        self.number, self.params, self.epochs, self.curve = number, params, epochs, []
        self.label = ""
        self.refresh()

    def epoch(self, number: int, epoch: int, value: float | None) -> None:
        self.curve.append(value)
        self.curves[number] = self.curve
        self.refresh()

    def retest_started(self, trial: int, seed: int, epochs: int) -> None:
        self.label = f"re-test of trial {trial} with seed {seed}"
        self.number, self.epochs, self.curve = trial, epochs, []
        self.refresh()

    def retest_epoch(self, trial: int, seed: int, epoch: int, value: float | None) -> None:
        self.curve.append(value)  # not into self.curves: the mark stays the search's best trial
        self.refresh()

    def render(self) -> Any:
        from rich.text import Text

        lines = [self.headline()]
        if self.number is not None:
            lines.append(self.label or f"trial {self.number}: {_params(self.params)}")
            ref = self.curves.get(self.best[0], []) if self.best else []
            for i, v in enumerate(self.curve[-15:], start=max(0, len(self.curve) - 15)):
                filled = 0 if v is None or not math.isfinite(v) else round(v * _BAR)
                bar = ["█"] * filled + ["·"] * (_BAR - filled)
                r = ref[i] if i < len(ref) else None
                if r is not None and math.isfinite(r):
                    bar[min(_BAR - 1, round(r * _BAR))] = "|"
                value = frac(v)
                lines.append(f"epoch {i + 1:>3}/{self.epochs}  {''.join(bar)}  {value}")
            if ref:
                lines.append("[dim]| the best trial's validation accuracy at the same epoch[/]")
        return Text.from_markup("\n".join(lines))


class CaviarDisplay(_Live):
    """Many models at once: a table of the latest trials and their state."""

    def __init__(self, console: Any) -> None:
        super().__init__(console)
        self.rows: dict[int | str, dict[str, Any]] = {}  # trials by number, re-tests by label

    def trial_started(self, number: int, params: dict[str, Any], epochs: int) -> None:
        self.rows[number] = {
            "params": params,
            "epochs": epochs,
            "epoch": 0,
            "value": None,
            "state": "running",
        }
        self.refresh()

    def epoch(self, number: int, epoch: int, value: float | None) -> None:
        if number in self.rows:
            self.rows[number].update(epoch=epoch, value=value)
            self.refresh()

    def trial_finished(
        self, number: int, state: str, value: float | None, finished: int | None = None
    ) -> None:
        if number in self.rows:
            self.rows[number]["state"] = state
            if value is not None:
                self.rows[number]["value"] = value
        super().trial_finished(number, state, value, finished)

    def retest_started(self, trial: int, seed: int, epochs: int) -> None:
        params = self.rows.get(trial, {}).get("params", {})
        self.rows[f"{trial} seed {seed}"] = {
            "params": params,
            "epochs": epochs,
            "epoch": 0,
            "value": None,
            "state": "re-test",
        }
        self.refresh()

    def retest_epoch(self, trial: int, seed: int, epoch: int, value: float | None) -> None:
        self.epoch(f"{trial} seed {seed}", epoch, value)  # type: ignore[arg-type]

    def retest_finished(self, trial: int, seed: int, value: float | None) -> None:
        row = self.rows.get(f"{trial} seed {seed}")
        if row is not None:
            row["state"] = "re-tested" if value is not None else "failed"
            if value is not None:
                row["value"] = value
        super().retest_finished(trial, seed, value)

    def render(self) -> Any:
        out = table(
            self.headline(), ("trial", ("state", "left"), "epoch", "val acc", ("params", "left"))
        )
        for number in list(self.rows)[-12:]:  # the latest started
            r = self.rows[number]
            out.add_row(
                str(number),
                r["state"],
                f"{r['epoch']}/{r['epochs']}",
                frac(r["value"]),
                _params(r["params"]),
            )
        return out


def leaderboard_table(result: dict[str, Any], top: int = 15) -> Any:
    """The best `top` rows of the study's leaderboard: rank, trial, validation accuracy, the
    searched values, seconds and state (epochs only where trials trained for different
    numbers of epochs, as coarse to fine does)."""
    rows = result["leaderboard"]
    paths: list[str] = []
    for r in rows:
        paths += [p for p in r["params"] if p not in paths]
    epochs = {r["epochs"] for r in rows}
    varied = len(epochs) > 1
    each = ""
    if len(epochs) == 1 and None not in epochs:
        n = next(iter(epochs))
        each = f", {n} epoch{'s' if n != 1 else ''} each"
    shown = f"top {top} of " if len(rows) > top else ""
    title = f"leaderboard of {result['study']} ({shown}{len(rows)} trials{each})"
    columns = ["rank", "trial", "val acc", *map(_short, paths)]
    out = table(title, [*columns, *(["epochs"] if varied else []), "s", ("state", "left")])
    for r in rows[:top]:
        cells = [str(r["rank"]), str(r["trial"]), frac(r["value"])]
        cells += [num(r["params"].get(p)) for p in paths]
        if varied:
            cells.append(num(r["epochs"]))
        out.add_row(*cells, seconds(r["seconds"]), r["state"])
    return out


def _spread(entry: dict[str, Any], kind: str) -> str:
    """``mean ± std [min, max]`` of one configuration's re-test values (`kind`: val or test)."""
    mean, std = entry[f"{kind}_mean"], entry[f"{kind}_std"]
    if mean is None:
        return "-"
    pm = f" ± {std:.3f}" if std is not None else ""
    return f"{frac(mean)}{pm} [{frac(entry[f'{kind}_min'])}, {frac(entry[f'{kind}_max'])}]"


def retest_table(retest: list[dict[str, Any]]) -> Any:
    """Each re-tested configuration: its original accuracies beside the re-test's spread."""
    runs = max(len(e["seeds"]) for e in retest)
    out = table(
        f"re-test of the best {len(retest)} configs with {runs} new seeds each "
        "(mean ± std \\[min, max])",
        ("rank", "trial", "val acc", "re-test val acc", "test acc", "re-test test acc", "runs"),
    )
    for e in retest:
        rank = str(e["rank"]) if not e["rank_changed"] else f"{e['rank']} -> {e['retest_rank']}"
        test = e["original_test_accuracy"]
        ok = sum(v is not None for v in e["values"])
        out.add_row(
            rank,
            str(e["trial"]),
            frac(e["original_val_accuracy"]),
            _spread(e, "val"),
            frac(test),
            _spread(e, "test"),
            f"{ok}/{len(e['seeds'])}" + (f" ({e['failed']} failed)" if e["failed"] else ""),
        )
    return out


def paired_table(retest: list[dict[str, Any]]) -> Any | None:
    """The search's best against each other re-tested config, paired by seed (b - a in points,
    its interval, the Holm-adjusted p-value, which is better): `trainlab compare`'s numbers."""
    rows = [
        (kind, p)
        for kind in ("val", "test")
        for e in retest
        if (p := e.get(f"{kind}_vs_best")) is not None
    ]
    if not rows:
        return None
    level = rows[0][1]["confidence"]
    out = table(
        f"re-test paired by seed, a = trial {retest[0]['trial']} (the search's best), points",
        (
            ("metric", "left"),
            ("a", "left"),
            ("b", "left"),
            "b - a",
            f"{100 * level:.4g}% CI",
            "p (Holm)",
            "n",
            "better",
        ),
    )
    for kind, p in rows:
        ci = "-" if p["ci_low"] is None else f"[{100 * p['ci_low']:.2f}, {100 * p['ci_high']:.2f}]"
        winner = {"a": p["a"], "b": p["b"], None: "-"}[p["better"]]
        out.add_row(
            f"{kind} acc",
            p["a"],
            p["b"],
            f"{100 * p['diff']:+.2f}",
            ci,
            num(p["p_value"]),
            str(p["n"]),
            winner,
        )
    return out


def verdict_lines(retest: list[dict[str, Any]]) -> list[str]:
    """compare's verdict in words for each pair of the re-test's paired comparison."""
    return [
        f"verdict ({kind} acc): {p['verdict']}"
        for kind in ("val", "test")
        for e in retest
        if (p := e.get(f"{kind}_vs_best")) is not None
    ]


def ranking_line(retest: list[dict[str, Any]]) -> str:
    """Whether the re-test ranks the configurations as the search did."""
    if not any(e["rank_changed"] for e in retest):
        return "ranking unchanged by the re-test"
    order = sorted(retest, key=lambda e: e["retest_rank"])
    return (
        "ranking changed by the re-test (trials by re-test mean: "
        + ", ".join(str(e["trial"]) for e in order)
        + ")"
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds >= 1")
    return value


#: what `workers_ahead` assumes where neither the flags nor the config say (SearchConfig's
#: defaults; tests/test_search_startup.py checks they agree)
DEFAULT_WORKERS, DEFAULT_TRIALS, DEFAULT_EXECUTOR = 1, 20, "local"


def _peek(args: argparse.Namespace) -> dict[str, Any] | None:
    """``search.workers``, ``trials``, ``executor`` as the flags, --set and the config file give
    them, read without validating anything (the plan does that): a key that is not a plain
    value is left out; None when the file is no readable YAML mapping (the plan will say so).
    The YAML is composed, not constructed, so aliases are never expanded."""
    import yaml

    found: dict[str, Any] = {}
    try:
        with open(args.config, encoding="utf-8") as f:
            root = yaml.compose(f, Loader=yaml.SafeLoader)
        if not isinstance(root, yaml.MappingNode):
            return None
        section = next((v for k, v in root.value if k.value == "search"), None)
        for key, value in section.value if isinstance(section, yaml.MappingNode) else ():
            if isinstance(value, yaml.ScalarNode):
                found[key.value] = value.value
    except Exception:  # noqa: BLE001  (any mistake here is the plan's to report, in one line)
        return None
    for item in args.set or ():
        path, _, text = item.partition("=")
        if path.strip().startswith("search."):
            found[path.strip().removeprefix("search.")] = text.strip()
    flags = {"workers": args.workers, "trials": args.trials, "executor": args.executor}
    found.update({k: v for k, v in flags.items() if v is not None})
    return found


def workers_ahead(args: argparse.Namespace) -> int:
    """How many local workers `trainlab search` starts before anything else (before it loads
    Optuna and torch, reads the config properly, opens the storage and prepares the data), so
    that their own start (torch, the trainer) overlaps all that: the workers the flags, --set
    and the config ask for, capped at its trials and this machine's CPU cores, one on
    --resume (the runs left are not known yet); 0 for another executor or an unreadable
    setting. A guess only: the driver ends those above the runs left, and starts the rest
    when trials are handed out (a worker never changes a trial's numbers)."""
    found = _peek(args)
    if found is None or str(found.get("executor", DEFAULT_EXECUTOR)).strip() != "local":
        return 0
    try:
        workers = int(found.get("workers", DEFAULT_WORKERS))
        trials = int(found.get("trials", DEFAULT_TRIALS))
    except (TypeError, ValueError):
        return 0
    from trainlab.experiments.executors import usable_cores  # no torch

    return max(0, min(workers, trials, usable_cores(), 1 if args.resume else workers))


def cmd_search(args: argparse.Namespace) -> int:
    from trainlab.experiments.executors import LocalExecutor  # no torch: workers start first

    ahead = workers_ahead(args)
    started = LocalExecutor(ahead).start() if ahead else None
    try:
        return _search(args, started)
    finally:
        if started is not None:  # the driver closed them when it ran; a mistake before: here
            started.close(kill=True)


def _search(args: argparse.Namespace, started: Any) -> int:
    from trainlab.search.running.driver import (  # heavy: Optuna and torch, when it runs
        Driver,
        SearchOptions,
        plan,
    )
    from trainlab.search.study import is_shared  # heavy: Optuna, with the driver

    options = SearchOptions.given(
        started=started,
        strategy=args.strategy,
        trials=args.trials,
        workers=args.workers,
        executor=args.executor,
        ray_address=args.ray_address,
        pruner=args.pruner,
        storage=args.storage,
        study=args.study,
        out=args.out,
        resume=args.resume,
        retest=args.retest,
        retest_seeds=args.retest_seeds,
        overrides=args.set,
        keep_all=args.keep_all,
        heartbeat=args.heartbeat,
        artifacts=args.artifacts,
    )
    p = plan(args.config, options)
    c = readable(console(args.json))
    display = PandaDisplay(c) if p.search.workers == 1 else CaviarDisplay(c)
    if p.storage_url.startswith("sqlite:///"):  # the dashboard reads the study's SQLite folder
        display.hint = dashboard_hint(
            os.path.dirname(p.storage_url.removeprefix("sqlite:///")) or "."
        )
    elif is_shared(p.storage_url):
        display.hint = storage_hint(p.storage_url)
    result = Driver(p, options, display).run().to_dict()
    print_table(c, leaderboard_table(result))
    n = result["trials"]
    c.print(
        f"trials: {n['complete']} complete, {n['pruned']} pruned, {n['diverged']} diverged, "
        f"{n['failed']} failed in {result['seconds']:.1f} s"
    )
    best = result["best"]
    if best:
        test = best.get("test_accuracy")
        c.print(
            f"best: trial {best['trial']}, validation accuracy {frac(best['value'])}"
            + (f", test accuracy {frac(test)}" if test is not None else "")
        )
        c.print(
            f"best config: {best['config_path']} "
            f"(trainlab train {shlex.quote(str(best['config_path']))})",
            highlight=False,
        )
    retest = result.get("retest")
    if retest is not None:
        if retest:
            print_table(c, retest_table(retest))
            c.print(ranking_line(retest))
            paired = paired_table(retest)
            if paired is not None:
                print_table(c, paired)
                for line in verdict_lines(retest):
                    c.print(line, highlight=False)
        else:
            c.print("re-test: no complete trial to re-test")
    c.print(
        f"study directory: {result['study_dir']} (plots: params.png, curves.png)", highlight=False
    )
    if args.json:
        emit_json(result)
    return 0


def add_parser(sub) -> None:  # noqa: ANN001
    p = sub.add_parser("search", help="hyperparameter search (random, coarse-to-fine, ...)")
    p.add_argument("config", help="experiment config with a search: section (YAML)")
    p.add_argument("--strategy", choices=names.STRATEGIES)
    p.add_argument("--trials", type=int, help="the study's total number of trials")
    p.add_argument("--workers", type=int, help="trials at once (1: panda, N: caviar)")
    p.add_argument("--executor", choices=names.EXECUTORS)
    p.add_argument("--ray-address", help="a Ray cluster (default: start a local one)")
    p.add_argument("--pruner", choices=names.PRUNERS)
    p.add_argument(
        "--storage",
        help=f"study storage: sqlite:///FILE (default {DEFAULT_STORAGE}), "
        "postgresql://USER@HOST:PORT/DB or journal:///ABS/PATH/FILE.log (several drivers, "
        "on several machines, share a PostgreSQL or journal study; docs/scaling.md)",
    )
    p.add_argument(
        "--heartbeat",
        type=_positive_int,
        default=30,
        metavar="S",
        help="shared storage: seconds between a running trial's heartbeats; a trial silent "
        "for 3 beats (its driver died) is re-run by the other drivers (default 30)",
    )
    p.add_argument(
        "--artifacts",
        metavar="DIR",
        help="folder of the study's artifact store (trials' files for every machine; default: "
        "beside a journal's log, else the study directory)",
    )
    p.add_argument("--study", help="study name (default: the config's file name)")
    p.add_argument("--out", help="study directory (default runs/search/<study>)")
    p.add_argument("--resume", action="store_true", help="continue the study to --trials")
    p.add_argument(
        "--retest",
        type=int,
        metavar="K",
        help="after the search, re-train the best K configs with new seeds and "
        "report each one's mean and spread",
    )
    p.add_argument(
        "--retest-seeds", type=int, metavar="R", help="new seeds per re-tested config (default 3)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the base experiment, e.g. train.epochs=5 (repeatable)",
    )
    p.add_argument(
        "--keep-all",
        action="store_true",
        help="keep every file of each trial (default: best.pt, result.json, "
        "config.yaml, metrics.jsonl)",
    )
    add_common(p)
    p.set_defaults(func=cmd_search)
