"""`trainlab compare A.yaml B.yaml [C.yaml ...]`: is A really better than B? Every config trains
with the same seeds; the table gives each config's mean and spread, each pair's paired
difference with its confidence interval and test, and a verdict in words

`trainlab compare --study NAME [--storage URL] --top K` compares the configs of a search study's
K best trials (its leaderboard's order, trainlab.search.study.top_run_dirs).
"""

from __future__ import annotations

import argparse
from typing import Any

import trainlab
from trainlab.commands.output import add_common, console, emit_json
from trainlab.errors import UserError
from trainlab.report.progress import BarView
from trainlab.rundir import DEFAULT_STORAGE, RunDir


def configs_of(args: argparse.Namespace) -> list[str]:
    """The configs to compare: the arguments, or the config.yaml of a study's top trials."""
    if args.study is None:
        return list(args.configs)
    if args.configs:
        raise UserError("--study: give config files or --study, not both")
    if args.top < 2:
        raise UserError(f"--top: at least 2 trials to compare, got {args.top}")
    from trainlab.search.study import top_run_dirs  # heavy: Optuna loads only when it is read

    _, dirs = top_run_dirs(args.storage, args.study, args.top)  # the study's leaderboard
    return [str(RunDir(d).config) for d in dirs]


def _table(report: dict[str, Any]):  # noqa: ANN202
    from rich.table import Table

    scale = 100.0 if report["metric"].endswith("_accuracy") else 1.0
    seeds = len(report["seeds"])
    table = Table(title=f"{report['metric']} over {seeds} paired seeds (runs in {report['out']})")
    for col, justify in (("config", "left"), ("mean", "right"), ("sd", "right"), ("n", "right")):
        table.add_column(col, justify=justify)
    for c in report["configs"]:
        sd = "-" if c["std"] is None else f"{scale * c['std']:.2f}"
        table.add_row(c["name"], f"{scale * c['mean']:.2f}", sd, str(c["n"]))
    pairs = Table(title=f"paired differences b - a, {100 * report['confidence']:.4g}% CI")
    for col in ("a", "b", "diff", "CI", "p", "better"):
        pairs.add_column(col, justify="left" if col in ("a", "b") else "right")
    for p in report["pairs"]:
        ci = (
            "-"
            if p["ci_low"] is None
            else f"[{scale * p['ci_low']:.2f}, {scale * p['ci_high']:.2f}]"
        )
        pv = "-" if p["p_value"] is None else f"{p['p_value']:.3g}"
        winner = {"a": p["a"], "b": p["b"], None: "-"}[p["better"]]
        pairs.add_row(p["a"], p["b"], f"{scale * p['diff']:+.2f}", ci, pv, winner)
    return table, pairs


def cmd_compare(args: argparse.Namespace) -> int:
    from trainlab.experiments.compare import view_progress  # heavy: torch, when it runs

    configs = configs_of(args)
    bar = BarView(None, "compare", transient=True)
    try:
        report = trainlab.compare(
            configs,
            overrides=args.set,
            seeds=args.seeds,
            until_decided=args.until_decided,
            cap=args.cap,
            metric=args.metric,
            confidence=args.confidence,
            margin=args.margin / 100.0 if args.metric.endswith("_accuracy") else args.margin,
            baseline=args.baseline,
            workers=args.workers,
            out=args.out,
            progress=view_progress(bar),
        )
    finally:
        bar.stop()
    out = console(args.json)
    for t in _table(report):
        out.print(t)
    if report["correction"] == "holm":
        out.print(
            f"p-values Holm-adjusted over {len(report['pairs'])} pairs (family-wise error "
            f"{100 * (1 - report['nominal_confidence']):g}%)",
            highlight=False,
        )
    if args.until_decided and report["looks"] > 1:
        state = "decided" if report["decided"] else "not decided at the cap"
        out.print(
            f"--until-decided: {state}; each of up to {report['looks']} looks tests at "
            f"{100 * report['confidence']:.3g}% so the whole stays at "
            f"{100 * report['nominal_confidence']:g}%",
            highlight=False,
        )
    for p in report["pairs"]:
        out.print(f"[bold]verdict[/] {p['verdict']}", highlight=False)
    out.print(f"picture: {report['picture']}", highlight=False)
    if args.json:
        emit_json(report)
    return 0


def add_parser(sub) -> None:  # noqa: ANN001
    p = sub.add_parser(
        "compare",
        help="is A really better than B? train configs with paired seeds and test the difference",
    )
    p.add_argument(
        "configs",
        nargs="*",
        metavar="CONFIG",
        help="experiment configs (YAML); CONFIG@METRIC reads another result key of its runs",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field in every config, e.g. train.epochs=10 (repeatable)",
    )
    p.add_argument("--seeds", type=int, default=5, help="paired seeds 0..N-1 (default 5)")
    p.add_argument(
        "--until-decided",
        action="store_true",
        help="add --seeds more at a time until every pair is decided or --cap seeds ran",
    )
    p.add_argument("--cap", type=int, default=30, help="most seeds for --until-decided (30)")
    p.add_argument(
        "--metric",
        default="test_accuracy",
        help="result key: test_accuracy (default), val_accuracy, ema_test_accuracy, ...",
    )
    p.add_argument("--confidence", type=float, default=0.95, help="default 0.95")
    p.add_argument(
        "--margin",
        type=float,
        default=0.5,
        help="differences smaller than this count as none (accuracy points; default 0.5)",
    )
    p.add_argument(
        "--baseline",
        action="store_true",
        help="compare the first config with each other one (default: every pair)",
    )
    p.add_argument("--workers", type=int, default=1, help="runs trained at once (processes)")
    p.add_argument("--out", help="where the runs live (default runs/compare/<A>-vs-<B>...)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue in --out (finished runs are always reused, never retrained)",
    )
    p.add_argument("--study", metavar="NAME_OR_DIR", help="compare the best trials of a study")
    p.add_argument("--top", type=int, default=3, metavar="K", help="with --study (default 3)")
    p.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help=f"with --study: the study's Optuna storage URL (default {DEFAULT_STORAGE})",
    )
    add_common(p)
    p.set_defaults(func=cmd_compare)
