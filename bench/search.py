"""Search benchmark: trials per minute with 1 and 2 local workers, and what grid, random,
coarse-to-fine and TPE find at the same budget on MNIST-1D.

1. Throughput: the same random search (same trials, same seed) with 1 worker and with 2 workers,
   each worker one torch thread. Trials per minute are measured over the search loop (from the
   workers being ready, i.e. torch imported, to the last trial's end) and over the whole command
   (start-up and final plots included); the speed-up is the ratio (target >= 1.8 on 2 free
   cores). 1 and 2 workers alternate `repeats` times and the medians are compared.
2. Quality at equal budget: every strategy gets the same number of epochs summed over its trials
   (grid/random/TPE: `trials` x `epochs`; coarse-to-fine: `rounds` rounds of trials/rounds
   trials with epochs growing per round, summing to the same total). Each runs for several
   seeds (search seed = train seed); the table gives the best validation accuracy and the test
   accuracy of the best trial, mean and spread over the seeds.

    python bench/search.py [--quick] [--seeds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

from trainlab.search.running.driver import search

BASE: dict[str, Any] = {
    "data": {"name": "mnist1d", "val_fraction": 0.1},
    "model": {"kind": "cnn", "width": 16, "depth": 3, "kernel_size": 5, "norm": "batch"},
    "optim": {"name": "adam", "lr": 3e-3},
    "train": {"epochs": 4, "batch_size": 128, "seed": 0},
}
SPACE = {"optim.lr": "loguniform(1e-4, 1e-1)", "model.dropout": "uniform(0, 0.5)"}


def run(config: dict[str, Any], **options: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="trainlab-bench-") as tmp:
        result = search(
            config, storage=f"sqlite:///{tmp}/bench.db", out=f"{tmp}/study", **options
        ).to_dict()
    return result


def throughput(trials: int, epochs: int, repeats: int) -> dict[str, Any]:
    """1 and 2 workers, alternating `repeats` times (the load of a shared machine drifts)."""
    config = {
        **BASE,
        "train": {**BASE["train"], "epochs": epochs},
        "search": {"strategy": "random", "trials": trials, "seed": 0, "space": SPACE},
    }
    out: dict[str, Any] = {
        "trials": trials,
        "epochs_per_trial": epochs,
        "threads_per_worker": 1,
        "repeats": repeats,
    }
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for _ in range(repeats):
        for workers in (1, 2):
            runs[workers].append(run(config, workers=workers))
    for workers, rs in runs.items():
        loop = statistics.median(r["loop_seconds"] for r in rs)
        whole = statistics.median(r["seconds"] for r in rs)
        out[f"workers_{workers}"] = {
            "loop_seconds": loop,
            "seconds": whole,
            "trials_per_minute": round(60 * trials / loop, 2),
            "trials_per_minute_whole": round(60 * trials / whole, 2),
            # seconds one trial trains (in its worker): grows when workers compete for cores
            "trial_seconds_mean": round(
                statistics.fmean(row["seconds"] for r in rs for row in r["leaderboard"]), 3
            ),
            "best_value": rs[0]["best"]["value"],
        }
    one, two = out["workers_1"], out["workers_2"]
    out["speedup"] = round(two["trials_per_minute"] / one["trials_per_minute"], 2)
    out["speedup_whole"] = round(two["trials_per_minute_whole"] / one["trials_per_minute_whole"], 2)
    out["same_results"] = one["best_value"] == two["best_value"]
    return out


def strategies(trials: int, epochs: int, rounds: int, seeds: int, workers: int) -> dict[str, Any]:
    """Best validation/test accuracy per strategy at a budget of trials x epochs epochs."""
    per_round = trials // rounds
    # coarse-to-fine: epochs grow 1:2:3... and sum (x per_round) to the same budget
    weights = list(range(1, rounds + 1))
    unit = trials * epochs / (per_round * sum(weights))
    epochs_per_round = [max(1, round(unit * w)) for w in weights]
    settings = {
        "grid": {"strategy": "grid"},
        "random": {"strategy": "random"},
        "coarse-to-fine": {
            "strategy": "coarse-to-fine",
            "rounds": rounds,
            "trials_per_round": per_round,
            "epochs_per_round": epochs_per_round,
            "keep_top": 3,
        },
        "tpe": {"strategy": "tpe", "tpe_startup_trials": max(2, trials // 3)},
    }
    out: dict[str, Any] = {
        "budget_epochs": trials * epochs,
        "trials": trials,
        "epochs_per_round": epochs_per_round,
        "seeds": seeds,
    }
    for name, extra in settings.items():
        vals, tests, budgets, secs = [], [], [], []
        for seed in range(seeds):
            config = {
                **BASE,
                "train": {**BASE["train"], "epochs": epochs, "seed": seed},
                "search": {"trials": trials, "seed": seed, "space": SPACE, **extra},
            }
            r = run(config, workers=workers)
            vals.append(r["best"]["value"])
            tests.append(r["best"]["test_accuracy"])
            budgets.append(sum(row["epochs"] or 0 for row in r["leaderboard"]))
            secs.append(r["seconds"])
        out[name] = {
            "best_val_mean": statistics.fmean(vals),
            "best_val_std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "best_test_mean": statistics.fmean(tests),
            "best_test_std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
            "epochs_trained_mean": statistics.fmean(budgets),
            "seconds_mean": statistics.fmean(secs),
            "best_val": vals,
            "best_test": tests,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a reduced size (a few minutes)")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-strategies", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    size = (
        {
            "tp_trials": 6,
            "tp_epochs": 6,
            "repeats": 1,
            "trials": 9,
            "epochs": 4,
            "rounds": 3,
            "seeds": 2,
        }
        if args.quick
        else {
            "tp_trials": 12,
            "tp_epochs": 10,
            "repeats": 2,
            "trials": 18,
            "epochs": 6,
            "rounds": 3,
            "seeds": 3,
        }
    )
    seeds = args.seeds or size["seeds"]
    start = time.perf_counter()
    report: dict[str, Any] = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
    if not args.skip_throughput:
        report["throughput"] = throughput(size["tp_trials"], size["tp_epochs"], size["repeats"])
    if not args.skip_strategies:
        report["strategies"] = strategies(
            size["trials"], size["epochs"], size["rounds"], seeds, workers=2
        )
    report["load_average_end"] = os.getloadavg()
    report["seconds"] = round(time.perf_counter() - start, 1)
    if args.json:
        print(json.dumps(report))
        return
    if "throughput" in report:
        t = report["throughput"]
        print(
            f"throughput: {t['trials']} random trials x {t['epochs_per_trial']} epochs, MNIST-1D "
            f"CNN, {t['threads_per_worker']} torch thread per worker"
        )
        for w in (1, 2):
            r = t[f"workers_{w}"]
            print(
                f"  {w} worker(s): {r['trials_per_minute']:6.2f} trials/min (training loop), "
                f"{r['trials_per_minute_whole']:6.2f} whole command, "
                f"{r['trial_seconds_mean']:.2f} s of training per trial"
            )
        print(
            f"  speed-up: {t['speedup']:.2f} (loop), {t['speedup_whole']:.2f} (whole); "
            f"same best result: {t['same_results']}"
        )
    if "strategies" in report:
        s = report["strategies"]
        print(
            f"strategies at {s['budget_epochs']} epochs each, {s['seeds']} seeds "
            f"(coarse-to-fine epochs per round {s['epochs_per_round']}):"
        )
        print(f"  {'strategy':15s} {'best val':>16s} {'its test':>16s} {'epochs':>7s}")
        for name in ("grid", "random", "coarse-to-fine", "tpe"):
            r = s[name]
            print(
                f"  {name:15s} {r['best_val_mean']:.4f} ± {r['best_val_std']:.4f}  "
                f"{r['best_test_mean']:.4f} ± {r['best_test_std']:.4f}  "
                f"{r['epochs_trained_mean']:7.1f}"
            )
    print(
        f"load average {report['load_average']} -> {report['load_average_end']} on "
        f"{report['cpus']} CPUs; {report['seconds']} s"
    )


if __name__ == "__main__":
    main()
