"""Training-loop overhead: `trainlab.train` against a minimal hand-written PyTorch loop.

Both train the same model (same initialization) on the same prepared MNIST-1D tensors with the
same optimizer class, batch size and epochs, and evaluate on the validation split every epoch and
on the test split at the end; they alternate in one process and the medians are compared. What
trainlab does on top: per-step divergence check and step log, running accuracy, per-epoch
checkpoints (last.pt, best.pt, written atomically), metrics.jsonl, the update/weight ratio, and at
the end result.json, the advice rules and curves.png.

    python bench/loop_overhead.py [--epochs 8] [--repeats 3] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import trainlab
from trainlab.config import load_config
from trainlab.data import prepare
from trainlab.nn.models import build_model
from trainlab.optim import create

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mnist1d-cnn.yaml"


def hand_loop(cfg, splits, make_optimizer=None) -> tuple[float, float]:
    """What a person writes by hand: shuffle, minibatches, step, validate each epoch, test.

    `make_optimizer(params)` replaces the config's optimizer (bench/optim_training.py)."""
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, splits.input_shape, splits.num_classes)
    opt = (
        make_optimizer(model.parameters())
        if make_optimizer
        else create(cfg.optim.name, model.parameters(), **cfg.optim.kwargs())
    )
    x, y, bs = splits.x_train, splits.y_train, cfg.train.batch_size
    start = time.perf_counter()
    for epoch in range(cfg.train.epochs):
        gen = torch.Generator().manual_seed(epoch)
        perm = torch.randperm(len(x), generator=gen)
        model.train()
        for i in range(0, len(x), bs):
            idx = perm[i : i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            (model(splits.x_val).argmax(1) == splits.y_val).float().mean().item()
    with torch.no_grad():
        acc = (model(splits.x_test).argmax(1) == splits.y_test).float().mean().item()
    return time.perf_counter() - start, acc


def ours(cfg, splits) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = trainlab.train(cfg, out=Path(tmp) / "run", splits=splits)
        return time.perf_counter() - start, result.seconds, result.test_accuracy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(EXAMPLE, [f"train.epochs={args.epochs}", "train.patience=null"])
    splits = prepare(cfg.data)
    hand_t, ours_t, ours_loop_t = [], [], []
    ours(cfg, splits)  # warm-up: imports, allocator, plotting
    for _ in range(args.repeats):
        t, hand_acc = hand_loop(cfg, splits)
        hand_t.append(t)
        total, loop, ours_acc = ours(cfg, splits)
        ours_t.append(total)
        ours_loop_t.append(loop)
    h, o, ol = (statistics.median(v) for v in (hand_t, ours_t, ours_loop_t))
    row = {
        "model": f"{cfg.model.kind} width={cfg.model.width} depth={cfg.model.depth}",
        "data": cfg.data.name,
        "epochs": args.epochs,
        "batch_size": cfg.train.batch_size,
        "threads": args.threads,
        "hand_seconds": round(h, 3),
        "trainlab_seconds": round(o, 3),
        "trainlab_loop_seconds": round(ol, 3),
        "ratio_total": round(o / h, 3),
        "ratio_loop": round(ol / h, 3),
        "hand_test_accuracy": hand_acc,
        "trainlab_test_accuracy": ours_acc,
    }
    if args.json:
        print(json.dumps(row))
        return
    print(
        f"{row['model']} on {row['data']}, {args.epochs} epochs, batch {row['batch_size']}, "
        f"{args.threads} threads, median of {args.repeats}"
    )
    print(f"{'':28}{'seconds':>10}{'ratio':>8}")
    print(f"{'hand-written loop':28}{h:10.2f}{1.0:8.3f}")
    print(f"{'trainlab (epochs only)':28}{ol:10.2f}{ol / h:8.3f}")
    print(f"{'trainlab (whole call)':28}{o:10.2f}{o / h:8.3f}")


if __name__ == "__main__":
    main()
