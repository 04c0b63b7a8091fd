"""The MNIST-1D paper's table (Greydanus 2020, table 1), reproduced with plugin models.

The four models of examples/plugins/mnist1d_models.py are trained twice, all through trainlab:
  1. with the paper's protocol (examples/plugins/mnist1d-<model>.yaml: Adam, lr 1e-2, batch 100,
     no weight decay, constant learning rate, 167 epochs = 6,012 steps on 3,600 signals), over
     several seeds: mean +- std of the test accuracy;
  2. with trainlab's practice: the recipe of examples/mnist1d-best.yaml (shift and scale
     augmentation, AdamW with decoupled weight decay, cosine decay, batch 128), a short random
     search over the learning rate and the weight decay (log scales, ranked on the validation
     split), and the ensemble of the search's top 3 trials (their probabilities averaged).
Test accuracy is on the 1,000 test signals, with the weights of the best validation epoch.

    python bench/mnist1d_table.py [--json] [--quick] [--seeds 3] [--trials 4] [--threads 1]
                                  [--only cnn,gru]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

import trainlab
from trainlab.experiments.ensemble import evaluate_runs
from trainlab.search import study as studies
from trainlab.search.running.driver import search

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "examples" / "plugins"
MODELS = ("logistic", "mlp", "cnn", "gru")
PAPER = {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94, "gru": 0.91}  # table 1; humans: 0.96
# trainlab's practice: examples/mnist1d-best.yaml's recipe applied to the plugin model
RECIPE: dict[str, Any] = {
    "data": {"name": "mnist1d", "augment": ["shift", "scale"]},
    "optim": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.05},
    "schedule": {"name": "cosine"},
    "train": {"epochs": 60, "batch_size": 128, "log_steps": False, "seed": 0},
}
SPACE = {"optim.lr": "loguniform(1e-3, 3e-2)", "optim.weight_decay": "loguniform(1e-3, 1e-1)"}
PRACTICE_EPOCHS = {"gru": 30}  # the GRU's epochs cost 10x the CNN's on a CPU


def paper_protocol(model: str, seeds: int, epochs: int | None, threads: int, tmp: Path) -> dict:
    """The paper's protocol over `seeds` seeds: test accuracies and seconds per run."""
    config = PLUGINS / f"mnist1d-{model}.yaml"
    accs, seconds = [], []
    for seed in range(seeds):
        sets = [f"train.seed={seed}", f"train.threads={threads}"]
        sets += [f"train.epochs={epochs}"] if epochs else []
        start = time.perf_counter()
        result = trainlab.train(config, out=tmp / f"paper-{model}-{seed}", overrides=sets)
        seconds.append(time.perf_counter() - start)
        accs.append(result.test_accuracy)
    return {"test_accuracies": accs, "seconds_per_run": statistics.mean(seconds)}


def practice(model: str, trials: int, top: int, epochs: int | None, threads: int, tmp: Path):
    """The recipe, a random search of `trials` trials, the ensemble of the best `top`."""
    epochs = epochs or PRACTICE_EPOCHS.get(model, RECIPE["train"]["epochs"])
    config = {
        **RECIPE,
        "model": {"kind": f"mnist1d_models:{model}"},
        "train": {**RECIPE["train"], "epochs": epochs, "threads": threads},
        "search": {"strategy": "random", "trials": trials, "seed": 0, "space": SPACE},
    }
    path = tmp / f"practice-{model}.yaml"
    path.write_text(yaml.safe_dump(config))
    storage = f"sqlite:///{tmp / 'studies.db'}"
    start = time.perf_counter()
    found = search(
        path,
        trials=trials,
        workers=1,
        executor="inline",
        storage=storage,
        study=f"practice-{model}",
        out=str(tmp / f"study-{model}"),
        threads=threads,
    )
    _, dirs = studies.top_run_dirs(storage, f"practice-{model}", top)
    ensemble = evaluate_runs(dirs)
    best = found.best or {}
    return {
        "epochs": epochs,
        "trials": trials,
        "best_params": best.get("params"),
        "best_test_accuracy": ensemble["members"][0]["test_accuracy"],
        "ensemble_size": ensemble["size"],
        "ensemble_test_accuracy": ensemble["test_accuracy"],
        "seconds": time.perf_counter() - start,
    }


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quick", action="store_true", help="a smoke run: a few epochs, 1 seed")
    p.add_argument("--seeds", type=int, default=3, help="seeds of the paper's protocol")
    p.add_argument("--trials", type=int, default=4, help="trials of the practice's search")
    p.add_argument("--top", type=int, default=3, help="trials in the practice's ensemble")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--only", default=",".join(MODELS), help="models, comma-separated")
    args = p.parse_args(argv)
    models = [m for m in args.only.split(",") if m]
    if unknown := sorted(set(models) - set(MODELS)):
        p.error(f"--only: unknown {unknown}; choose from {', '.join(MODELS)}")
    seeds, trials, top = (1, 2, 2) if args.quick else (args.seeds, args.trials, args.top)
    paper_epochs, practice_epochs = (3, 2) if args.quick else (None, None)
    sys.path.insert(0, str(PLUGINS))  # the search imports mnist1d_models by name
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mnist1d-table-") as d:
        for model in models:
            tmp = Path(d)
            here = paper_protocol(model, seeds, paper_epochs, args.threads, tmp)
            ours = practice(model, trials, top, practice_epochs, args.threads, tmp)
            rows[model] = {"paper": PAPER[model], "paper_protocol": here, "practice": ours}
            print(f"{model}: done", file=sys.stderr)
    header = (
        f"{'model':<9} {'paper':>6} {'paper protocol here':>22} {'s/run':>6} "
        f"{'practice: best trial':>21} {f'ensemble of {top}':>15} {'s':>5}"
    )
    lines = [header, "-" * len(header)]
    for model, r in rows.items():
        accs = r["paper_protocol"]["test_accuracies"]
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        here = f"{pct(statistics.mean(accs))} +- {pct(spread)} (n={len(accs)})"
        ours = r["practice"]
        lines.append(
            f"{model:<9} {pct(r['paper']):>6} {here:>22} "
            f"{r['paper_protocol']['seconds_per_run']:>6.0f} "
            f"{pct(ours['best_test_accuracy']):>21} {pct(ours['ensemble_test_accuracy']):>15} "
            f"{ours['seconds']:>5.0f}"
        )
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"models": rows, "seeds": seeds, "trials": trials, "top": top}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
