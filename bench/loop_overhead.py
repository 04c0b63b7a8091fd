"""Training-loop overhead: `trainlab.train` against a minimal hand-written PyTorch loop and
PyTorch Lightning with its defaults.

All three train the same model (same initialization) on the same prepared MNIST-1D tensors with
the same optimizer class, batch size and epochs, evaluate on the validation split every epoch and
on the test split at the end. They alternate in one process (the order rotates every round) and
each round's ratios to the hand loop are taken, wall time and the process's CPU time; the table
gives the medians of those paired ratios and the load average before and after. Each call is
timed whole: building the model, training, evaluating, and everything a tool writes.

What trainlab does on top: per-step divergence check and step log, running accuracy, the
update/weight ratio, per-epoch checkpoints (last.pt, best.pt when the best epoch improves,
written atomically), metrics.jsonl, and at the end result.json, env.json, the advice rules and
curves.png. Lightning runs as a user would write it: a LightningModule around the same network, a
DataLoader over the tensors (shuffled, the same batch size), and `Trainer(max_epochs=N,
accelerator="cpu", devices=1)` with every other setting at its default (sanity-check batches,
the default logger, a checkpoint per epoch, progress bar, model summary). Lightning is not a
dependency of trainlab: without it installed its column says so.

    python bench/loop_overhead.py [--epochs 10] [--repeats 5] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
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
    Returns (seconds of the loop, test accuracy).

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


def ours(cfg, splits) -> float:
    """The whole `trainlab.train` call; its test accuracy."""
    with tempfile.TemporaryDirectory() as tmp:
        return trainlab.train(cfg, out=Path(tmp) / "run", splits=splits).test_accuracy


def lightning_module():
    """The `lightning` package (or the older `pytorch_lightning`), None when neither imports."""
    for name in ("lightning", "pytorch_lightning"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def lightning_loop(cfg, splits, L) -> float:
    """The same training written for PyTorch Lightning, its defaults kept; the test accuracy."""
    from torch.utils.data import DataLoader, TensorDataset

    class Classifier(L.LightningModule):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def training_step(self, batch, _):
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_acc", (self.net(x).argmax(1) == y).float().mean())

        def test_step(self, batch, _):
            x, y = batch
            self.log("test_acc", (self.net(x).argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return create(cfg.optim.name, self.parameters(), **cfg.optim.kwargs())

    torch.manual_seed(cfg.train.seed)
    module = Classifier(build_model(cfg.model, splits.input_shape, splits.num_classes))
    train = DataLoader(
        TensorDataset(splits.x_train, splits.y_train),
        batch_size=cfg.train.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(cfg.train.seed),
    )
    val = DataLoader(TensorDataset(splits.x_val, splits.y_val), batch_size=len(splits.x_val))
    test = DataLoader(TensorDataset(splits.x_test, splits.y_test), batch_size=len(splits.x_test))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(
            max_epochs=cfg.train.epochs, accelerator="cpu", devices=1, default_root_dir=tmp
        )
        trainer.fit(module, train, val)
        return trainer.test(module, test, verbose=False)[0]["test_acc"]


def timed(fn: Callable[[], float]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of the whole process, what fn returned)."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5, help="paired rounds")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(EXAMPLE, [f"train.epochs={args.epochs}", "train.patience=null"])
    splits = prepare(cfg.data)
    L = lightning_module()
    runners: dict[str, Callable[[], float]] = {
        "hand": lambda: hand_loop(cfg, splits)[1],
        "trainlab": lambda: ours(cfg, splits),
    }
    if L is not None:
        runners["lightning"] = lambda: lightning_loop(cfg, splits, L)

    def run(name: str) -> tuple[float, float, float]:
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            warnings.simplefilter("ignore")
            if name == "lightning":  # its progress bar, model summary and notices
                stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
                stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
                for logger in ("lightning", "pytorch_lightning", "lightning.pytorch"):
                    logging.getLogger(logger).setLevel(logging.ERROR)
            return timed(runners[name])

    for name in runners:  # warm-up: imports, allocator, kernels
        run(name)
    load_before = os.getloadavg()
    names = list(runners)
    rounds: list[dict[str, tuple[float, float, float]]] = []
    for r in range(args.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        rounds.append({name: run(name) for name in order})
    load_after = os.getloadavg()

    def median(name: str, i: int) -> float:
        return statistics.median(rnd[name][i] for rnd in rounds)

    def ratio(name: str, i: int) -> float:
        return statistics.median(rnd[name][i] / rnd["hand"][i] for rnd in rounds)

    row = {
        "model": f"{cfg.model.kind} width={cfg.model.width} depth={cfg.model.depth}",
        "data": cfg.data.name,
        "epochs": args.epochs,
        "batch_size": cfg.train.batch_size,
        "threads": args.threads,
        "rounds": args.repeats,
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in load_after],
        "lightning": None if L is None else f"{L.__name__} {L.__version__}",
    }
    for name in ("hand", "trainlab", "lightning"):
        found = name in runners
        row[f"{name}_wall_seconds"] = round(median(name, 0), 3) if found else None
        row[f"{name}_cpu_seconds"] = round(median(name, 1), 3) if found else None
        row[f"{name}_wall_ratio"] = round(ratio(name, 0), 3) if found else None
        row[f"{name}_cpu_ratio"] = round(ratio(name, 1), 3) if found else None
        row[f"{name}_test_accuracy"] = round(float(rounds[-1][name][2]), 4) if found else None
    if args.json:
        print(json.dumps(row))
        return
    print(
        f"{row['model']} on {row['data']}, {args.epochs} epochs, batch {row['batch_size']}, "
        f"{args.threads} threads; medians of {args.repeats} paired rounds; load average "
        f"{row['load_before'][0]:.2f} before, {row['load_after'][0]:.2f} after"
    )
    print(f"{'':26}{'wall s':>9}{'ratio':>8}{'CPU s':>9}{'ratio':>8}{'test acc':>10}")
    labels = {"hand": "hand-written loop", "trainlab": "trainlab.train"}
    labels["lightning"] = "Lightning (defaults)"
    for name, label in labels.items():
        if name not in runners:
            print(f"{label:26}{'not installed':>34}")
            continue
        print(
            f"{label:26}{row[f'{name}_wall_seconds']:9.2f}{row[f'{name}_wall_ratio']:8.3f}"
            f"{row[f'{name}_cpu_seconds']:9.2f}{row[f'{name}_cpu_ratio']:8.3f}"
            f"{row[f'{name}_test_accuracy']:10.4f}"
        )


if __name__ == "__main__":
    main()
