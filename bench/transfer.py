"""Transfer learning, the lecture's demonstration: is a pretrained network worth it?

Pretrain once on the 28x28 mnist5k images of digits 0-4 (examples/mnist5k-digits0to4.yaml), then
on three targets compare training the same network from scratch with `linear` (new head only:
by default L-BFGS on cached features with l2 chosen on validation, and, as the baseline it
replaced, the config's Adam on the same features, `--solver optim`), `finetune` (the last block at
lr x 0.1, the head at the full lr) and `finetune all` (every block at lr x 0.1):
- digits 5-9 with 10 training examples per class (examples/transfer-digits5to9.yaml),
- digits 5-9 with all of them (about 360 per class; larger batches, fewer epochs),
- scikit-learn's 8x8 digits resized to 28x28 (examples/transfer-sklearn-digits.yaml), normalized
  with their own statistics, plus one `linear` row with the pretrained statistics to show why.
The learning rate comes first (the lecture): each method gets its own, picked by validation
accuracy on seed 0 from --lrs (a head alone wants a larger one than a whole network; the L-BFGS
head has no lr to pick: it picks its l2). Each cell is then the mean test accuracy over seeds
(train.seed and data.seed, so the 10 examples per class differ too) and the seconds of training
(result.seconds: the epochs, not data loading; for cached heads plus computing the features and
the l2 search).

    .venv/bin/python bench/transfer.py [--seeds 3] [--lrs 3e-3,1e-2,3e-2,1e-1] [--threads 1]
                                       [--json]

`--lrs ""` uses each config's learning rate without a sweep.
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

import torch

import trainlab
from trainlab.config import load_config, validate
from trainlab.experiments.transfer import transfer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PRETRAIN = EXAMPLES / "mnist5k-digits0to4.yaml"
TARGETS = [  # (label, config, overrides, normalize)
    ("digits 5-9, 10/class", EXAMPLES / "transfer-digits5to9.yaml", [], "pretrained"),
    (
        "digits 5-9, all",
        EXAMPLES / "transfer-digits5to9.yaml",
        ["data.per_class=null", "train.batch_size=64", "train.epochs=10"],
        "pretrained",
    ),
    ("sklearn digits 28x28", EXAMPLES / "transfer-sklearn-digits.yaml", [], "new"),
]
METHODS = [  # (label, mode or None for scratch, transfer keyword arguments)
    ("scratch", None, {}),
    ("linear (L-BFGS)", "linear", {}),
    ("linear, Adam", "linear", {"solver": "optim"}),
    ("finetune 1", "finetune", {"unfreeze": 1}),
    ("finetune all", "finetune", {"unfreeze": "all"}),
]


def scratch(config: Path, overrides: list[str], model: dict, out: Path) -> trainlab.Result:
    cfg = load_config(config, overrides)
    cfg = validate({**cfg.model_dump(mode="json"), "model": model})
    return trainlab.train(cfg, out=out, curves=False)


def run_all(seeds: int, lrs: list[float], threads: int, log: Any) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        pre = trainlab.train(
            PRETRAIN, out=root / "pretrain", overrides=[f"train.threads={threads}"]
        )
        pretrain = {
            "config": str(PRETRAIN.relative_to(EXAMPLES.parent)),
            "test_accuracy": pre.test_accuracy,
            "seconds": pre.seconds,
            "wall_seconds": round(time.perf_counter() - start, 2),
        }
        log(f"pretrained on digits 0-4: test {100 * pre.test_accuracy:.2f}% in {pre.seconds:.1f}s")
        model = trainlab.load_run(root / "pretrain").config.model.model_dump(mode="json")
        n = 0
        for target, config, overrides, normalize in TARGETS:
            methods = METHODS + (
                [("linear, pretrained stats", "linear", {"normalize": "pretrained"})]
                if normalize == "new"
                else []
            )
            for label, mode, kwargs in methods:
                kw = {"normalize": normalize, **kwargs}

                def once(
                    seed: int,
                    lr: float | None,
                    mode: str | None = mode,
                    kw: dict = kw,
                    config: Path = config,
                    overrides: list[str] = overrides,
                ) -> trainlab.Result:
                    nonlocal n
                    n += 1
                    o = [
                        *overrides,
                        f"train.seed={seed}",
                        f"data.seed={seed}",
                        f"train.threads={threads}",
                        *([f"optim.lr={lr}"] if lr else []),
                    ]
                    if mode is None:
                        return scratch(config, o, model, root / f"run{n}")
                    return transfer(
                        root / "pretrain",
                        config,
                        mode=mode,
                        overrides=o,
                        out=root / f"run{n}",
                        curves=False,
                        **kw,
                    )

                lbfgs = mode == "linear" and kw.get("solver") != "optim"  # no lr: it picks l2
                sweep = {lr: once(0, lr) for lr in ([] if lbfgs else lrs)}
                lr = max(sweep, key=lambda k: sweep[k].val_accuracy) if sweep else None
                results = [sweep[lr] if lr else once(0, None)]
                results += [once(seed, lr) for seed in range(1, seeds)]
                accs = [r.test_accuracy for r in results]
                secs = [
                    r.seconds
                    + r.extra.get("features_seconds", 0.0)
                    + r.extra.get("l2_search_seconds", 0.0)
                    for r in results
                ]
                trainable = results[0].extra.get("trainable_parameters", results[0].parameters)
                row = {
                    "target": target,
                    "method": label,
                    "trainable_parameters": trainable,
                    "lr": lr,
                    "sweep_val_accuracy": {str(k): v.val_accuracy for k, v in sweep.items()},
                    "test_accuracy": statistics.mean(accs),
                    "test_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                    "seconds": statistics.mean(secs),
                    "accuracies": accs,
                    "l2": results[0].extra.get("l2"),
                }
                rows.append(row)
                how = f"lr {lr}" if lr else (f"l2 {row['l2']:.2g}" if row["l2"] else "config")
                log(
                    f"{target:22s} {label:25s} {how:10s} "
                    f"{100 * row['test_accuracy']:6.2f}% "
                    f"± {100 * row['test_accuracy_std']:.2f}  {row['seconds']:6.1f}s"
                )
    return {
        "seeds": seeds,
        "lrs": lrs,
        "threads": threads,
        "torch": torch.__version__,
        "pretrain": pretrain,
        "rows": rows,
    }


def print_table(result: dict[str, Any], file: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    p = result["pretrain"]
    table = Table(
        title=f"transfer from a CNN pretrained on mnist5k digits 0-4 (test "
        f"{100 * p['test_accuracy']:.2f}%, {p['seconds']:.1f}s); mean of "
        f"{result['seeds']} seeds",
        title_justify="left",
    )
    for col in ("target", "method", "trained params", "lr", "test acc", "± std", "seconds"):
        table.add_column(col, justify="left" if col in ("target", "method") else "right")
    for r in result["rows"]:
        table.add_row(
            r["target"],
            r["method"],
            f"{r['trainable_parameters']:,}",
            (f"l2 {r['l2']:.2g}" if r.get("l2") is not None else "config")
            if r["lr"] is None
            else f"{r['lr']:g}",
            f"{100 * r['test_accuracy']:.2f}%",
            f"{100 * r['test_accuracy_std']:.2f}",
            f"{r['seconds']:.1f}",
        )
    Console(file=file, width=120).print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument(
        "--lrs",
        default="3e-3,1e-2,3e-2,1e-1",
        help="learning rates to pick from per method by validation accuracy on seed 0 "
        "(empty: each config's)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import os

    os.environ.setdefault("MPLBACKEND", "Agg")
    torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    lrs = [float(v) for v in args.lrs.split(",") if v.strip()]
    result = run_all(args.seeds, lrs, args.threads, log)
    print_table(result, sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
