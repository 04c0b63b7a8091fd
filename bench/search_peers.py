"""trainlab search against its peers: the same space, budget and model, three ways in one run.

The task: the MNIST-1D paper's CNN (examples/plugins/mnist1d_models.py:cnn, 25 channels) on
MNIST-1D (trainlab's split: 3,600 train, 400 validation, 1,000 test signals, standardized), Adam,
batch 100, constant learning rate, searching optim.lr ~ loguniform(1e-4, 1e-1) and
optim.weight_decay ~ loguniform(1e-6, 1e-2); `trials` trials of at most `epochs` epochs, 2 workers
of one torch thread each, every trial trained with seed 0. The ways:

- trainlab-c2f: `trainlab search` coarse-to-fine, 3 rounds, epochs growing to `epochs`;
- trainlab-tpe: `trainlab search` TPE with the median pruner (its default SQLite storage);
- trainlab-tpe-journal: the same on a journal file (`--storage journal:///...`), the optuna
  script's storage;
- optuna: a hand-written Optuna script, as its docs teach: TPE (multivariate, constant liar) +
  MedianPruner with trainlab's settings, two processes sharing a journal storage file
  (MaxTrialsCallback caps the total), a plain PyTorch loop on the same tensors and model;
- optuna-sqlite: the same script on a SQLite file (Optuna's RDB storage), trainlab-tpe's storage;
- ray-tune: Ray Tune, random search (seeded) with the ASHA scheduler (grace 1 epoch, reduction 3), a
  local Ray of 2 CPUs, max 2 trials at once, the same plain PyTorch loop.

Each way runs as its own command (start-up included), one after the other. Reported:
- `first_result_s`: seconds from the command's start until its first trial has finished;
- `to_target_s`: seconds from the command's start until a finished trial's best validation
  accuracy first reaches `target` (trial ends only, the same rule for every way);
- `best_val`, `test`: the best trial's validation accuracy and its test accuracy (at its best
  validation epoch);
- `trials_per_min`; `epochs`: epochs trained in all;
- `startup_s`: from the command's start to the first trial's start (interpreter, imports, data,
  storage, the search's set-up; trainlab: the later of its first trial being asked and its
  workers being ready, the start of its `loop_seconds`: a trial is asked before its worker
  can take it);
- `overhead_s`: per trial, the worker time between the first trial's start and the last one's end
  not spent in training epochs (train + evaluation): (2 x that span - sum of epoch seconds) /
  trials: a trial's start-up (model, data loaders, a worker process), storage, reporting,
  checkpoints, idle slots (a coarse-to-fine round waits for its slowest trial);
- `lag_wait_s`: trainlab only, per trial, the worker time free workers sat idle because the lag
  held back the next trial (`search.lag`: trial n waits for the trials below n - lag; the
  driver's `lag_wait_seconds`), a part of `overhead_s`; `machinery_s`: `overhead_s` less
  that, what the search's machinery costs (for the peers, which hold no worker back, their
  `overhead_s`);
- `wall_s` (start-up and the final report or plots included) and `trials_per_min` over it;
- with the optuna way in the run, each other way's start-up, first result, overhead and wall
  time over the Optuna script's (a second table; `vs_optuna` in --json).

Epoch seconds are the epoch's training steps for every way (trainlab's metrics.jsonl counts
them so): evaluating the validation split after each epoch, and the test split once on the
best epoch's weights at the end, is each way's work outside its epochs (in `overhead_s`).

    python bench/search_peers.py [--quick] [--json] [--trials 36] [--epochs 30] [--target 0.9]
      [--only trainlab-tpe,optuna]

Needs optuna (a trainlab dependency) and ray[tune] (`pip install 'trainlab[ray]'`; without it
the ray-tune row says so). --quick: 6 trials of at most 4 epochs, target 0.6 (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "examples" / "plugins"
WAYS = (
    "trainlab-c2f",
    "trainlab-tpe",
    "trainlab-tpe-journal",
    "optuna",
    "optuna-sqlite",
    "ray-tune",
)
#: each trainlab way beside the script on the same storage (a second ratio table)
SAME_STORAGE = {"trainlab-tpe": "optuna-sqlite", "trainlab-tpe-journal": "optuna"}
WORKERS = 2
BATCH = 100
LR = (1e-4, 1e-1)
WD = (1e-6, 1e-2)
MEDIAN = {"startup": 5, "warmup": 1}  # trainlab's defaults (search.pruner_startup_trials, ...)
TPE_STARTUP = 10  # trainlab's search.tpe_startup_trials default


# --------------------------------------------------------------------------- shared data


def write_data(path: Path) -> None:
    """trainlab's own MNIST-1D splits, standardized, for the peers' plain loops."""
    import numpy as np

    from trainlab.config import DataConfig
    from trainlab.data import prepare

    s = prepare(DataConfig(name="mnist1d", val_fraction=0.1, seed=0))
    np.savez(
        path,
        **{k: getattr(s, k).numpy() for k in ("x_train", "y_train", "x_val", "y_val")},
        x_test=s.x_test.numpy(),
        y_test=s.y_test.numpy(),
    )


def train_trial(
    data: dict[str, Any], lr: float, wd: float, epochs: int, report: Any
) -> float | None:
    """The peers' plain PyTorch loop: seed 0, Adam, batch 100, shuffled each epoch; after each
    epoch `report(epoch, val_acc, train_seconds, test_now)` returns True to stop.

    train_seconds: the epoch's training steps, as trainlab's metrics.jsonl counts them (the
    evaluation is the trial's own work outside its epochs, for every way); test_now(): the
    current weights' test accuracy, for a caller that cannot wait for the end (Ray Tune's ASHA
    ends a trial inside its report). Like trainlab, the best epoch's weights are kept (here in
    memory) and tested once at the end: returns that test accuracy."""
    import copy

    import torch

    sys.path.insert(0, str(PLUGINS))
    from mnist1d_models import cnn

    torch.manual_seed(0)
    x, y = data["x_train"], data["y_train"]
    model = cnn(tuple(x.shape[1:]), 10)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    best, best_state = -1.0, None

    def accuracy(xs: torch.Tensor, ys: torch.Tensor) -> float:
        with torch.no_grad():
            return float((model(xs).argmax(1) == ys).float().mean())

    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = order[i : i + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        model.eval()
        val = accuracy(data["x_val"], data["y_val"])
        if val > best:
            best, best_state = val, copy.deepcopy(model.state_dict())
        if report(epoch, val, seconds, lambda: accuracy(data["x_test"], data["y_test"])):
            break
    if best_state is None:
        return None
    model.load_state_dict(best_state)
    return accuracy(data["x_test"], data["y_test"])


def load_data(path: str) -> dict[str, Any]:
    import numpy as np
    import torch

    with np.load(path) as d:
        return {k: torch.from_numpy(d[k]) for k in d.files}


class Trace:
    """One JSON line per epoch of a trial and one at its end (when, best validation so far, the
    test accuracy of the best epoch once known, the epoch seconds so far); the summary reads a
    trial's last line, which is its end."""

    def __init__(self, path: Path, trial: str) -> None:
        self.path, self.trial, self.started = path, trial, time.time()
        self.best, self.test, self.train_s, self.epochs = -1.0, None, 0.0, 0

    def epoch(self, val: float, seconds: float) -> None:
        self.epochs += 1
        self.train_s += seconds
        self.best = max(self.best, val)
        self._line()

    def end(self, test: float | None) -> None:
        self.test = test
        self._line()

    def _line(self) -> None:
        line = {
            "trial": self.trial,
            "started": self.started,
            "time": time.time(),
            "best_val": self.best,
            "test": self.test,
            "train_s": self.train_s,
            "epochs": self.epochs,
        }
        with open(self.path, "a") as f:
            f.write(json.dumps(line) + "\n")


# --------------------------------------------------------------------------- optuna


def optuna_worker(work: Path, index: int, trials: int, epochs: int, kind: str = "journal") -> None:
    import optuna
    import torch
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_data(str(work / "data.npz"))
    if kind == "sqlite":
        storage: Any = f"sqlite:///{work / 'optuna.db'}"
    else:
        storage = JournalStorage(JournalFileBackend(str(work / "optuna.log")))
    for attempt in range(50):  # two processes creating one SQLite schema may collide: retry
        try:
            study = optuna.create_study(
                study_name="peers",
                storage=storage,
                direction="maximize",
                load_if_exists=True,
                sampler=optuna.samplers.TPESampler(
                    seed=index, n_startup_trials=TPE_STARTUP, multivariate=True, constant_liar=True
                ),
                pruner=optuna.pruners.MedianPruner(
                    n_startup_trials=MEDIAN["startup"],
                    n_warmup_steps=MEDIAN["warmup"] + 1,
                    n_min_trials=1,
                ),
            )
            break
        except Exception:  # noqa: BLE001
            if attempt == 49:
                raise
            time.sleep(0.05)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", *LR, log=True)
        wd = trial.suggest_float("weight_decay", *WD, log=True)
        trace = Trace(work / f"trace-optuna-{index}.jsonl", f"{index}-{trial.number}")

        def report(epoch: int, val: float, seconds: float, test_now: Any) -> bool:
            trace.epoch(val, seconds)
            trial.report(val, epoch)
            return epoch < epochs and trial.should_prune()

        trace.end(train_trial(data, lr, wd, epochs, report))
        if trace.epochs < epochs:
            raise optuna.TrialPruned()
        return trace.best

    study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(trials, states=None)])


# --------------------------------------------------------------------------- ray tune


def tune_run(work: Path, trials: int, epochs: int) -> None:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    ray.init(
        num_cpus=WORKERS,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 1024 * 1024,
    )

    def trainable(config: dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(1)
        data = load_data(config["data"])
        trace = Trace(Path(config["trace"]), tune.get_context().get_trial_id())

        def report(epoch: int, val: float, seconds: float, test_now: Any) -> bool:
            # ASHA may end a trial inside tune.report: the best epoch's test is taken as it comes
            if val > trace.best:
                trace.test = test_now()
            trace.epoch(val, seconds)
            tune.report({"val_acc": val, "best_val": trace.best})
            return False  # ASHA stops the trial itself

        train_trial(data, config["lr"], config["weight_decay"], epochs, report)

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={
            "lr": tune.loguniform(*LR),
            "weight_decay": tune.loguniform(*WD),
            "data": str(work / "data.npz"),
            "trace": str(work / "trace-tune.jsonl"),
        },
        tune_config=tune.TuneConfig(
            metric="val_acc",
            mode="max",
            num_samples=trials,
            max_concurrent_trials=WORKERS,
            search_alg=BasicVariantGenerator(random_state=0),  # seeded random search
            scheduler=ASHAScheduler(max_t=epochs, grace_period=1, reduction_factor=3),
        ),
        run_config=tune.RunConfig(storage_path=str(work / "tune"), name="peers", verbose=0),
    )
    tuner.fit()
    ray.shutdown()


# --------------------------------------------------------------------------- trainlab


def trainlab_config(work: Path, strategy: str, trials: int, epochs: int) -> Path:
    shutil.copy(PLUGINS / "mnist1d_models.py", work / "mnist1d_models.py")
    search: dict[str, Any] = {"strategy": strategy, "trials": trials, "workers": WORKERS}
    if strategy == "coarse-to-fine":
        rounds = 3
        trials -= trials % rounds
        search.update(
            trials=trials,
            rounds=rounds,
            epochs_per_round=[max(1, epochs // 4), max(1, epochs // 2), epochs],
            keep_top=3,
            pruner="none",
        )
    else:
        search["pruner"] = "median"
    search["space"] = {
        "optim.lr": f"loguniform({LR[0]}, {LR[1]})",
        "optim.weight_decay": f"loguniform({WD[0]}, {WD[1]})",
    }
    config = {
        "data": {"name": "mnist1d", "val_fraction": 0.1, "seed": 0},
        "model": {"kind": "mnist1d_models:cnn"},
        "optim": {"name": "adam", "lr": 1e-2, "weight_decay": 0},
        "schedule": {"name": "constant"},
        "train": {"epochs": epochs, "batch_size": BATCH, "seed": 0, "log_steps": False},
        "search": search,
    }
    path = work / f"{strategy}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def trainlab_trace(work: Path, strategy: str, storage: str) -> list[dict[str, Any]]:
    """The same records as the peers' traces, from the study's storage and trial folders (a
    trial's end: Optuna's datetime_complete; its epochs: metrics.jsonl)."""
    import optuna

    from trainlab.search.study import open_storage

    study = optuna.load_study(study_name=strategy, storage=open_storage(storage))
    rows = []
    for t in study.get_trials(deepcopy=False):
        d = work / "study" / strategy / "trials" / f"{t.number:04d}"
        if t.datetime_complete is None or not (d / "metrics.jsonl").is_file():
            continue
        records = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        result = (
            json.loads((d / "result.json").read_text()) if (d / "result.json").is_file() else {}
        )
        vals = [r.get("val_accuracy") or 0.0 for r in records]
        rows.append(
            {
                "trial": str(t.number),
                "started": t.datetime_start.timestamp(),
                "time": t.datetime_complete.timestamp(),
                "best_val": max(vals, default=0.0),
                "test": result.get("test_accuracy"),
                "train_s": sum(r.get("seconds", 0.0) for r in records),
                "epochs": len(records),
            }
        )
    return rows


# --------------------------------------------------------------------------- driver


def read_traces(work: Path, pattern: str) -> list[dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    for path in work.glob(pattern):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            last[row["trial"]] = row
    return list(last.values())


def run_way(
    way: str, work: Path, trials: int, epochs: int
) -> tuple[float, float, list[dict], float | None]:
    """Run one way as its own command(s); returns (start, wall seconds, per-trial rows, the
    worker seconds the lag held free workers idle: trainlab's, None for a peer or a trainlab
    that does not say)."""
    lag_wait = None
    me = [sys.executable, str(Path(__file__).resolve())]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.time()
    if way.startswith("trainlab"):
        strategy = "coarse-to-fine" if way == "trainlab-c2f" else "tpe"
        cfg = trainlab_config(work, strategy, trials, epochs)
        storage = f"sqlite:///{work}/{strategy}.db"
        if way.endswith("journal"):
            storage = f"journal:///{work.resolve()}/{strategy}.log".replace(":////", ":///")
        cmd = [sys.executable, "-m", "trainlab", "search", str(cfg), "--json"]
        cmd += ["--storage", storage, "--study", strategy, "--out", str(work / "study" / strategy)]
        out = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"trainlab search exited {out.returncode}: {out.stderr[-2000:]}")
        rows = trainlab_trace(work, strategy, storage)
        # its first trials are asked before the worker processes start; as for the peers, whose
        # processes start before their first trial, the loop starts with the workers ready
        result = json.loads(out.stdout)
        loop = result["loop_seconds"]
        lag_wait = result.get("lag_wait_seconds")
        last = max((r["time"] for r in rows), default=start)
        for r in rows:
            r["started"] = max(r["started"], last - loop)
    elif way in ("optuna", "optuna-sqlite"):
        kind = "sqlite" if way == "optuna-sqlite" else "journal"
        procs = [
            subprocess.Popen(
                me + ["--optuna-worker", str(work), str(i), str(trials), str(epochs), kind],
                env=env,
            )
            for i in range(WORKERS)
        ]
        for p in procs:
            if p.wait() != 0:
                raise RuntimeError(f"optuna worker exited {p.returncode}")
        rows = read_traces(work, "trace-optuna-*.jsonl")
    else:
        out = subprocess.run(
            me + ["--tune-run", str(work), str(trials), str(epochs)],
            env=env,
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"ray tune exited {out.returncode}: {out.stderr[-2000:]}")
        rows = read_traces(work, "trace-tune.jsonl")
    return start, time.time() - start, rows, lag_wait


def summarize(
    start: float, wall: float, rows: list[dict], target: float, lag_wait: float | None = None
) -> dict[str, Any]:
    reached = [r["time"] - start for r in rows if r["best_val"] >= target]
    best = max(rows, key=lambda r: r["best_val"]) if rows else None
    train_s = sum(r["train_s"] for r in rows)
    n = len(rows)
    first = min((r["started"] for r in rows), default=start)
    last = max((r["time"] for r in rows), default=start)
    overhead = round((WORKERS * (last - first) - train_s) / n, 2) if n else None
    waited = round(lag_wait / n, 2) if n and lag_wait is not None else None
    return {
        "trials": n,
        "wall_s": round(wall, 1),
        "first_result_s": round(min(r["time"] for r in rows) - start, 1) if rows else None,
        "to_target_s": round(min(reached), 1) if reached else None,
        "best_val": round(best["best_val"], 4) if best else None,
        "test": round(best["test"], 4) if best and best["test"] is not None else None,
        "trials_per_min": round(60 * n / wall, 1) if n else 0.0,
        "epochs": sum(r["epochs"] for r in rows),
        "train_s": round(train_s, 1),
        "startup_s": round(first - start, 1),
        "loop_s": round(last - first, 1),
        "overhead_s": overhead,
        "lag_wait_s": waited,
        "machinery_s": None if overhead is None or waited is None else round(overhead - waited, 2),
    }


COLUMNS = (  # header, key, format
    ("trials", "trials", "d"),
    ("wall s", "wall_s", ".1f"),
    ("start-up s", "startup_s", ".1f"),
    ("first result s", "first_result_s", ".1f"),
    ("to target s", "to_target_s", ".1f"),
    ("best val", "best_val", ".3f"),
    ("test", "test", ".3f"),
    ("trials/min", "trials_per_min", ".1f"),
    ("epochs", "epochs", "d"),
    ("overhead s/trial", "overhead_s", ".2f"),
    ("lag wait s/trial", "lag_wait_s", ".2f"),
    ("machinery s/trial", "machinery_s", ".2f"),
)


def table(results: dict[str, dict[str, Any]]) -> str:
    """A markdown table (docs/scaling.md takes it as printed)."""
    lines = [
        "| way | " + " | ".join(h for h, _, _ in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for way, r in results.items():
        if "error" in r:
            lines.append(f"| {way} | {r['error']} |" + " |" * (len(COLUMNS) - 1))
            continue
        cells = ["-" if r.get(k) is None else format(r[k], f) for _, k, f in COLUMNS]
        lines.append(f"| {way} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: the figures issue 30 compares with the Optuna script's, as ratios (lower is better)
RATIOS = (
    ("start-up", "startup_s"),
    ("first result", "first_result_s"),
    ("overhead/trial", "overhead_s"),
    ("machinery/trial", "machinery_s"),
    ("wall", "wall_s"),
)


def ratios(results: dict[str, dict[str, Any]], reference: str = "optuna") -> dict[str, dict]:
    """Each way's figures over the `reference` way's, measured in the same run."""
    ref = results.get(reference)
    if not ref or "error" in ref:
        return {}
    out = {}
    for way, r in results.items():
        if way == reference or "error" in r:
            continue
        out[way] = {
            key: round(r[key] / ref[key], 2) if r.get(key) is not None and ref.get(key) else None
            for _, key in RATIOS
        }
    return out


def ratio_table(rows: dict[str, dict[str, Any]], title: str = "way / optuna") -> str:
    lines = [
        f"| {title} | " + " | ".join(h for h, _ in RATIOS) + " |",
        "|---|" + "---:|" * len(RATIOS),
    ]
    for way, r in rows.items():
        cells = ["-" if r.get(k) is None else f"{r[k]:.2f}" for _, k in RATIOS]
        lines.append(f"| {way} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--optuna-worker"]:
        optuna_worker(Path(argv[1]), int(argv[2]), int(argv[3]), int(argv[4]), *argv[5:6])
        return 0
    if argv[:1] == ["--tune-run"]:
        tune_run(Path(argv[1]), int(argv[2]), int(argv[3]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="6 trials of 4 epochs: a smoke run")
    p.add_argument("--trials", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--target", type=float, default=None)
    p.add_argument("--only", default=",".join(WAYS), help="comma-separated: " + ", ".join(WAYS))
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = p.parse_args(argv)
    trials = args.trials or (6 if args.quick else 36)
    epochs = args.epochs or (4 if args.quick else 30)
    target = args.target or (0.6 if args.quick else 0.9)
    ways = [w.strip() for w in args.only.split(",") if w.strip()]
    for w in ways:
        if w not in WAYS:
            p.error(f"--only: {w!r} is not one of {', '.join(WAYS)}")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="trainlab-peers-") as tmp:
        root = Path(tmp)
        write_data(root / "data.npz")
        for way in ways:
            work = root / way
            work.mkdir()
            shutil.copy(root / "data.npz", work / "data.npz")
            if way == "ray-tune":
                try:
                    import ray.tune  # noqa: F401
                except ImportError:
                    results[way] = {
                        "error": "ray[tune] is not installed (pip install 'trainlab[ray]')"
                    }
                    continue
            start, wall, rows, lag_wait = run_way(way, work, trials, epochs)
            if not way.startswith("trainlab"):
                lag_wait = 0.0  # a peer holds no worker back: its overhead is all machinery
            results[way] = summarize(start, wall, rows, target, lag_wait)
            if not args.json:
                print(f"{way}: {results[way]}", file=sys.stderr, flush=True)
    setup = {"trials": trials, "epochs": epochs, "target": target, "workers": WORKERS}
    load = [round(x, 2) for x in os.getloadavg()]
    vs = ratios(results)
    same = {  # each trainlab way over the script on its own storage
        way: ratios({way: results[way], ref: results[ref]}, ref)[way]
        for way, ref in SAME_STORAGE.items()
        if way in results
        and ref in results
        and "error" not in results[way]
        and "error" not in results[ref]
    }
    if args.json:
        print(
            json.dumps(
                {
                    "setup": setup,
                    "results": results,
                    "vs_optuna": vs,
                    "vs_same_storage": same,
                    "load": load,
                }
            )
        )
    else:
        print(f"MNIST-1D CNN, {trials} trials of at most {epochs} epochs, {WORKERS} workers")
        print(f"target: best validation accuracy {target:g}; load average at the end {load}")
        print(table(results))
        if vs:
            print()
            print(ratio_table(vs))
        if same:
            print()
            print(ratio_table(same, "way / the script on its storage"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
