"""Ensembles on MNIST-1D: a single model vs an ensemble of independently trained models vs a
snapshot ensemble vs Polyak (EMA) averaging, over several seeds; test accuracy and cost.

For each seed s, one `train.ensemble: M` run trains M members (seeds M*s .. M*s+M-1) with
`train.ema` switched on: each member is a "single model" sample, its EMA average is an "EMA"
sample on the very same trajectory (averaging does not change training), and their ensemble is
an "ensemble" sample; the members' EMA weights (ema.pt) are ensembled too. One
`train.snapshots: K` run with the same epochs (one run's cost) gives the snapshot ensemble.
Cost is training seconds (the epochs, as result.json counts them) relative to a single model;
the EMA's per-step update is inside the members' seconds. Every method runs in this one process
after a warm-up run, so the ratios hold on a loaded machine. At test time an ensemble of M (or
M snapshots) also costs M forward passes; EMA costs one.

    python bench/ensembles.py [--seeds 3] [--epochs E] [--members 5] [--snapshots 5]
                              [--ema 0.99] [--threads T] [--config PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

import trainlab
from trainlab.config import load_config
from trainlab.data import prepare
from trainlab.experiments.ensemble import evaluate_runs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def default_config() -> Path:
    """Our best MNIST-1D recipe when the regularization work has shipped it, else the CNN."""
    best = EXAMPLES / "mnist1d-best.yaml"
    return best if best.exists() else EXAMPLES / "mnist1d-cnn.yaml"


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def run_seed(config: Path, base: list[str], seed: int, args, splits, root: Path) -> dict:
    m = args.members
    ens = trainlab.train(
        config,
        out=root / f"ensemble-{seed}",
        splits=splits,
        curves=False,
        overrides=base + [f"train.seed={m * seed}", f"train.ensemble={m}", f"train.ema={args.ema}"],
    ).to_dict()
    members = [json.loads((Path(r["run_dir"]) / "result.json").read_text()) for r in ens["members"]]
    ema_ens = evaluate_runs([r["run_dir"] for r in ens["members"]], "ema.pt", splits=splits)
    snap = trainlab.train(
        config,
        out=root / f"snapshots-{seed}",
        splits=splits,
        curves=False,
        overrides=base + [f"train.seed={m * seed}", f"train.snapshots={args.snapshots}"],
    ).to_dict()
    return {
        "seed": seed,
        "single": [r["test_accuracy"] for r in members],
        "ema": [r["ema_test_accuracy"] for r in members],
        "ensemble": ens["ensemble_test_accuracy"],
        "ensemble_of_ema": ema_ens["test_accuracy"],  # the members' averaged weights, together
        "snapshot": snap["snapshot_test_accuracy"],
        "snapshot_run_single": snap["test_accuracy"],  # best epoch of the cyclic run alone
        "member_seconds": [r["seconds"] for r in members],
        "snapshot_seconds": snap["seconds"],
    }


def summarize(rows: list[dict], args) -> dict:
    single = statistics.fmean(t for r in rows for t in r["member_seconds"])
    methods = {
        "single model": ([a for r in rows for a in r["single"]], single),
        f"EMA {args.ema}": ([a for r in rows for a in r["ema"]], single),
        f"snapshot ensemble x{args.snapshots}": (
            [r["snapshot"] for r in rows],
            statistics.fmean(r["snapshot_seconds"] for r in rows),
        ),
        f"ensemble x{args.members}": (
            [r["ensemble"] for r in rows],
            statistics.fmean(sum(r["member_seconds"]) for r in rows),
        ),
        f"ensemble x{args.members} of EMA weights": (
            [r["ensemble_of_ema"] for r in rows],
            statistics.fmean(sum(r["member_seconds"]) for r in rows),
        ),
    }
    table = []
    for name, (accs, seconds) in methods.items():
        mean, std = mean_std(accs)
        table.append(
            {
                "method": name,
                "test_accuracy_mean": mean,
                "test_accuracy_std": std,
                "samples": len(accs),
                "train_seconds": round(seconds, 2),
                "cost_ratio": round(seconds / single, 2),
            }
        )
    return {"table": table, "runs": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--config",
        type=Path,
        default=None,
        help="MNIST-1D recipe (default examples/mnist1d-best.yaml if present, else "
        "examples/mnist1d-cnn.yaml)",
    )
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None, help="default: the config's")
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--snapshots", type=int, default=5)
    ap.add_argument(
        "--ema",
        type=float,
        default=0.99,
        help="EMA decay (0.99: a time constant of 100 steps, ~3.5 epochs here)",
    )
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--keep", type=Path, default=None, help="keep the run directories here")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = args.config or default_config()
    base = [f"train.threads={args.threads}", "train.patience=null", "train.log_steps=false"]
    if args.epochs:
        base.append(f"train.epochs={args.epochs}")
    cfg = load_config(config, base)
    splits = prepare(cfg.data)  # once: every run trains and tests on the same tensors
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        trainlab.train(
            config,
            out=root / "warm-up",
            splits=splits,
            curves=False,
            overrides=base + ["train.epochs=1"],
        )  # imports, allocator, first calls
        rows = [run_seed(config, base, s, args, splits, root) for s in range(args.seeds)]
    out = {
        "config": str(config),
        "data": cfg.data.name,
        "model": f"{cfg.model.kind} width={cfg.model.width} depth={cfg.model.depth}",
        "epochs": cfg.train.epochs,
        "seeds": args.seeds,
        "members": args.members,
        "snapshots": args.snapshots,
        "ema": args.ema,
        "threads": args.threads,
        **summarize(rows, args),
    }
    print_table(out, args, sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(out))


def print_table(out: dict, args, stream) -> None:
    print(
        f"{out['model']} on {out['data']} ({Path(out['config']).name}), {out['epochs']} "
        f"epochs, {args.seeds} seeds, {args.threads} threads",
        file=stream,
    )
    print(f"{'method':28}{'test accuracy':>20}{'n':>4}{'train s':>10}{'cost':>7}", file=stream)
    for r in out["table"]:
        acc = f"{100 * r['test_accuracy_mean']:.2f} ± {100 * r['test_accuracy_std']:.2f}%"
        print(
            f"{r['method']:28}{acc:>20}{r['samples']:>4}{r['train_seconds']:>10.1f}"
            f"{r['cost_ratio']:>6.2f}x",
            file=stream,
        )


if __name__ == "__main__":
    main()
