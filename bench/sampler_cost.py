"""What a strategy's proposals cost: the time `trainlab.optimize` spends between one
objective call and the next (ask, tell and bookkeeping; the objective itself is instant), for
`auto` against Optuna's TPE (`strategy="tpe"`) and against `auto` as it was, in one process:
`auto-gp` (Optuna's GPSampler with a cut acquisition search, issue 30's first step) and
`auto-before` (the same with Optuna's own settings, as before issue 30), both from
bench/auto_gp.py.

The space is bench/hpo_tables.py's HPOLib space (9 dimensions: 6 numeric, 3 categorical) and
the objective a cheap analytic function of it, so the time is the sampler's. Per strategy and
seed: the median ask at trials 40-50 and 90-100, and the whole search's ask time; the goal
(issue 30) is a median ask under 0.1 s at 50 trials and under 0.3 s at 100.

    python bench/sampler_cost.py [--trials 100] [--seeds 1]
                                 [--strategies auto,tpe,auto-gp,auto-before] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import optuna

import trainlab
from trainlab.search import strategies

sys.path.insert(0, str(Path(__file__).resolve().parent))
from auto_gp import GPAutoSampler  # noqa: E402
from hpo_tables import SPACES  # noqa: E402

SPACE = SPACES["hpolib"]


def objective(params: dict[str, Any]) -> float:
    """A smooth bowl with a categorical bonus (instant: the search's time is the sampler's)."""
    value = -((math.log10(params["init_lr"]) + 2.5) ** 2)
    value -= (params["dropout_1"] - 0.2) ** 2 + (params["dropout_2"] - 0.1) ** 2
    value -= 0.1 * (math.log2(params["n_units_1"]) - 7) ** 2 / 4
    value -= 0.1 * (math.log2(params["n_units_2"]) - 6) ** 2 / 4
    value -= 0.05 * abs(math.log2(params["batch_size"]) - 4)
    value += 0.1 * (params["activation_fn_1"] == "relu") + 0.05 * (
        params["lr_schedule"] == "cosine"
    )
    return value


# the earlier forms of auto, built where optimize builds `auto` (its SAMPLERS entry)
EARLIER = {
    "auto-gp": lambda cfg, space, worker: GPAutoSampler(space, cfg.seed),
    "auto-before": lambda cfg, space, worker: GPAutoSampler(space, cfg.seed, optuna_settings=True),
}


def ask_times(strategy: str, trials: int, seed: int) -> dict[str, list[float]]:
    """Wall and CPU seconds before each objective call since the previous one returned (trial
    0: since the call to optimize). `auto-gp`, `auto-before`: the samplers of `EARLIER`."""
    clocks = {"wall": time.perf_counter, "cpu": time.process_time}
    marks: list[dict[str, tuple[float, float]]] = []

    def timed(params: dict[str, Any]) -> float:
        start = {k: c() for k, c in clocks.items()}
        value = objective(params)
        marks.append({k: (start[k], c()) for k, c in clocks.items()})
        return value

    saved = strategies.SAMPLERS["auto"]
    if strategy in EARLIER:
        strategies.SAMPLERS["auto"] = EARLIER[strategy]
    try:
        begin = {k: c() for k, c in clocks.items()}
        name = "auto" if strategy in EARLIER else strategy
        trainlab.optimize(timed, SPACE, strategy=name, trials=trials, seed=seed)
    finally:
        strategies.SAMPLERS["auto"] = saved
    out = {}
    for k in clocks:
        ends = [begin[k]] + [m[k][1] for m in marks[:-1]]
        out[k] = [m[k][0] - end for m, end in zip(marks, ends)]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--strategies", default="auto,tpe,auto-gp,auto-before")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for seed in range(args.seeds):
        for strategy in args.strategies.split(","):
            times = ask_times(strategy, args.trials, seed)
            row: dict[str, Any] = {"strategy": strategy, "seed": seed, "trials": args.trials}
            for clock, ts in times.items():
                for first, last in ((40, 50), (90, 100)):
                    late = ts[first:last]
                    row[f"{clock}_ask_{first}_{last}_s"] = statistics.median(late) if late else None
                row[f"{clock}_total_s"] = sum(ts)
            rows.append(row)
    if args.json:
        print(json.dumps({"rows": rows}))
        return 0
    print(
        f"{'strategy':<12} {'seed':>4} {'ask@40-50 s':>12} {'ask@90-100 s':>13} {'all asks s':>11}"
        "   (wall; CPU in brackets)"
    )
    for r in rows:
        cells = []
        for key in ("ask_40_50_s", "ask_90_100_s", "total_s"):
            wall, cpu = r[f"wall_{key}"], r[f"cpu_{key}"]
            cells.append("-" if wall is None else f"{wall:.3f} [{cpu:.3f}]")
        print(f"{r['strategy']:<12} {r['seed']:>4} {cells[0]:>12} {cells[1]:>13} {cells[2]:>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
