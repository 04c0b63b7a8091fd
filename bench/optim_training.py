"""Whole training runs with our optimizers against torch.optim's fused ones.

bench/optim_step.py times one step; this times what a user waits for: the hand-written loop of
bench/loop_overhead.py (the MNIST-1D CNN of examples/mnist1d-cnn.yaml, same init, same batches,
validation each epoch) with trainlab.optim and with torch.optim (fused=True), alternating in one
process, median of repeats.

    python bench/optim_training.py [--epochs 6] [--repeats 3] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from loop_overhead import EXAMPLE, hand_loop  # bench/ is on sys.path when run as a script

from trainlab.config import load_config
from trainlab.data import prepare
from trainlab.optim import create

CASES = {  # name: (our optimizer and arguments, the torch.optim class)
    "adam": (("adam", {"lr": 3e-3}), torch.optim.Adam),
    "adamw": (("adamw", {"lr": 3e-3, "weight_decay": 0.05}), torch.optim.AdamW),
    "momentum": (("sgd", {"lr": 0.05, "momentum": 0.9}), torch.optim.SGD),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(EXAMPLE, [f"train.epochs={args.epochs}"])
    splits = prepare(cfg.data)
    hand_loop(load_config(EXAMPLE, ["train.epochs=1"]), splits)  # warm-up: kernels, caches
    rows = []
    for name, ((ours, kwargs), reference) in CASES.items():
        times: dict[str, list[float]] = {"ours": [], "torch_fused": []}
        for _ in range(args.repeats):  # alternate, so drift hits both sides alike
            times["ours"].append(
                hand_loop(cfg, splits, lambda p, o=ours, k=kwargs: create(o, p, **k))[0]
            )
            times["torch_fused"].append(
                hand_loop(cfg, splits, lambda p, r=reference, k=kwargs: r(p, **k, fused=True))[0]
            )
        ours_s, torch_s = (statistics.median(v) for v in times.values())
        rows.append(
            {
                "optimizer": name,
                "ours_s": round(ours_s, 3),
                "torch_fused_s": round(torch_s, 3),
                "ratio": round(ours_s / torch_s, 3),
            }
        )
    report = {
        "model": "mnist1d-cnn",
        "epochs": args.epochs,
        "threads": args.threads,
        "repeats": args.repeats,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"MNIST-1D CNN, {args.epochs} epochs, {args.threads} threads, median of {args.repeats}")
    print(f"{'optimizer':<10} {'ours s':>8} {'torch fused s':>14} {'ratio':>7}")
    for r in rows:
        print(
            f"{r['optimizer']:<10} {r['ours_s']:>8.3f} {r['torch_fused_s']:>14.3f} "
            f"{r['ratio']:>7.3f}"
        )


if __name__ == "__main__":
    main()
