"""Whole training runs with our optimizers against torch.optim's fused ones.

bench/optim_step.py times one step; this times what a user waits for: the same hand-written
minibatch loop (the MNIST-1D CNN of examples/mnist1d-cnn.yaml, same init, same batches) with
trainlab.optim and with torch.optim (fused=True), alternating in one process, median of repeats.

    python bench/optim_training.py [--epochs 6] [--repeats 3] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from trainlab.config import load_config
from trainlab.data import prepare
from trainlab.nn.models import build_model
from trainlab.optim import create

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mnist1d-cnn.yaml"
CASES = {  # name: (our optimizer and arguments, the torch.optim class)
    "adam": (("adam", {"lr": 3e-3}), torch.optim.Adam),
    "adamw": (("adamw", {"lr": 3e-3, "weight_decay": 0.05}), torch.optim.AdamW),
    "momentum": (("sgd", {"lr": 0.05, "momentum": 0.9}), torch.optim.SGD),
}


def train_seconds(cfg, splits, make_optimizer, epochs: int) -> float:
    torch.manual_seed(0)
    model = build_model(cfg.model, splits.input_shape, splits.num_classes)
    opt = make_optimizer(model.parameters())
    x, y, bs = splits.x_train, splits.y_train, cfg.train.batch_size
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), bs):
            batch = order[i : i + bs]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(EXAMPLE)
    splits = prepare(cfg.data)
    rows = []
    for name, ((ours, kwargs), reference) in CASES.items():
        times: dict[str, list[float]] = {"ours": [], "torch_fused": []}
        for _ in range(args.repeats):  # alternate, so drift hits both sides alike
            times["ours"].append(train_seconds(
                cfg, splits, lambda p, o=ours, k=kwargs: create(o, p, **k), args.epochs))
            times["torch_fused"].append(train_seconds(
                cfg, splits, lambda p, r=reference, k=kwargs: r(p, **k, fused=True), args.epochs))
        ours_s, torch_s = (statistics.median(v) for v in times.values())
        rows.append({"optimizer": name, "ours_s": round(ours_s, 3),
                     "torch_fused_s": round(torch_s, 3), "ratio": round(ours_s / torch_s, 3)})
    report = {"model": "mnist1d-cnn", "epochs": args.epochs, "threads": args.threads,
              "repeats": args.repeats, "rows": rows}
    if args.json:
        print(json.dumps(report))
        return
    print(f"MNIST-1D CNN, {args.epochs} epochs, {args.threads} threads, median of {args.repeats}")
    print(f"{'optimizer':<10} {'ours s':>8} {'torch fused s':>14} {'ratio':>7}")
    for r in rows:
        print(f"{r['optimizer']:<10} {r['ours_s']:>8.3f} {r['torch_fused_s']:>14.3f} "
              f"{r['ratio']:>7.3f}")


if __name__ == "__main__":
    main()
