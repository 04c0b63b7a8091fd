"""What the lag's waiting costs: a 2-worker `trainlab search` with search.lag against the same
search without it, in paired, interleaved runs.

The search: the lecture's spirals MLP (examples/spirals-search.yaml's space: learning rate,
optimizer, Adam's beta1, L2, width), `epochs` epochs a trial, `trials` trials, TPE with the
median pruner (pruned trials end early, so trials finish out of order), 2 workers of one torch
thread. Each round runs, with the same seed, one command per side:

- ``lagged``: this tree's `trainlab search` with ``search.lag`` = each `--lags` value;
- ``free``: the reference tree's (`--reference`, default the main checkout's src/), which has no
  lag: each proposal and pruning reads whichever trials have finished.

Reported per side: ``loop_s``, the search loop's wall seconds (`loop_seconds` of
``--json``: from the workers being ready to the last trial's end, start-up excluded);
``idle``, the fraction of the 2 workers' time in that loop not spent in a trial (1 - sum of
trial durations / (2 x the span from the first trial's start to the last one's end), from the
study's timestamps); ``trials_per_s``; ``epochs`` trained in all. The ratios lagged / free
are over the sum of the rounds' loop seconds. A trial's proposals and prunings differ between
the sides (the lag changes what TPE and the pruner read), so the sides train different amounts:
compare the idle fractions, and the loop seconds per epoch trained.

    python bench/search_lag.py [--rounds 3] [--trials 24] [--epochs 6] [--lags 1,3]
                               [--reference /work/main/src] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import optuna

ROOT = Path(__file__).resolve().parent.parent
SPACE = {
    "optim.lr": "loguniform(1e-4, 1)",
    "optim.name": "choice([sgd, momentum, adam])",
    "optim.betas.0": "beta(0.8, 0.99)",
    "train.l2": "loguniform(1e-6, 1e-1)",
    "model.width": "logint(8, 256)",
}


def config(epochs: int, trials: int, seed: int, lag: int | None) -> str:
    search: dict[str, Any] = {
        "strategy": "tpe",
        "trials": trials,
        "workers": 2,
        "pruner": "median",
        "seed": seed,
        "space": SPACE,
    }
    if lag is not None:
        search["lag"] = lag
    return json.dumps(
        {
            "data": {"name": "spirals"},
            "model": {"kind": "mlp", "width": 100, "depth": 2},
            "optim": {"name": "adam", "lr": 1e-2},
            "train": {"epochs": epochs, "batch_size": 64},
            "search": search,
        }
    )


def run(src: str, folder: Path, name: str, text: str) -> dict[str, Any]:
    """One `trainlab search` command on `src`'s trainlab; its loop seconds and idle fraction."""
    path = folder / f"{name}.yaml"
    path.write_text(text)  # JSON is YAML
    url = f"sqlite:///{folder}/{name}.db"
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "trainlab.cli", "search", str(path), "--json"]
    cmd += ["--storage", url, "--out", str(folder / name), "--study", name]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name}: {done.stderr[-2000:]}")
    out = json.loads(done.stdout)
    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    span = (end - start).total_seconds()
    busy = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
    return {
        "loop_s": out["loop_seconds"],
        "idle": 1 - busy / (2 * span),
        "trials_per_s": len(trials) / out["loop_seconds"],
        "pruned": out["trials"]["pruned"],
        "epochs": sum(len(t.intermediate_values) for t in trials),
        "best": out["best"]["value"] if out["best"] else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (seeds 0, 1, ...)")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lags", default="1,3", help="comma list of search.lag values")
    parser.add_argument("--reference", default="/work/main/src", help="the lag-free tree's src")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    lags = [int(v) for v in args.lags.split(",")]
    ours = str(ROOT / "src")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sides = ["free"] + [f"lag{lag}" for lag in lags]
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.rounds):
            order = sides if seed % 2 == 0 else sides[::-1]  # interleaved: no side always first
            for side in order:
                lag = None if side == "free" else int(side[3:])
                src = args.reference if side == "free" else ours
                text = config(args.epochs, args.trials, seed, lag)
                rows[side].append(run(src, Path(tmp), f"{side}-s{seed}", text))
                if not args.json:
                    print(side, seed, rows[side][-1], flush=True)
    free_loop = sum(r["loop_s"] for r in rows["free"])
    summary = {
        side: {
            "loop_s": sum(r["loop_s"] for r in rows[side]),
            "loop_ratio": sum(r["loop_s"] for r in rows[side]) / free_loop,
            "idle": sum(r["idle"] for r in rows[side]) / len(rows[side]),
            "epochs": sum(r["epochs"] for r in rows[side]),
            "best_mean": sum(r["best"] or 0 for r in rows[side]) / len(rows[side]),
        }
        for side in sides
    }
    load = os.getloadavg()
    result = {"rounds": rows, "summary": summary, "load": load, "args": vars(args)}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        for side, s in summary.items():
            print(
                f"{side:6s} loop {s['loop_s']:7.1f} s  x{s['loop_ratio']:.2f} of free  "
                f"idle {s['idle']:.0%}  epochs {s['epochs']}  "
                f"s/epoch {s['loop_s'] / s['epochs']:.3f}  best val {s['best_mean']:.3f}"
            )
    return result


if __name__ == "__main__":
    main()
