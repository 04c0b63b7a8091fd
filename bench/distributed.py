"""One run on many processes: time per epoch of one process against `--nproc N` on the CPU (gloo).

The same config (an MLP on MNIST-1D, one torch thread per process) trains once in this process
and once on N processes started by trainlab's launcher (torch's elastic_launch); per-epoch times
are read from each run's metrics.jsonl (the loop, without process start-up), and the whole call
is timed too (start-up included). The per-epoch losses are compared as the tests do. On a machine
with as many cores as processes or fewer, expect no speed-up: the processes share the cores and
add one all-reduce of the gradients per step.

The two alternate `--repeats` times and the medians are compared (a shared machine drifts).

    python bench/distributed.py [--nproc 2] [--epochs 4] [--batch-size 256] [--repeats 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import trainlab
from trainlab.rundir import METRICS, read_jsonl

CONFIG = {
    "data": {"name": "mnist1d"},
    "model": {"kind": "mlp", "width": 256, "depth": 2},
    "optim": {"name": "momentum", "lr": 0.05},
    "train": {"batch_size": 256, "threads": 1, "log_steps": False},
}


def one_run(cfg: dict, out: Path, nproc: int | None) -> dict:
    start = time.perf_counter()
    trainlab.train(cfg, out=out, curves=False, nproc=nproc)
    wall = time.perf_counter() - start
    rows = read_jsonl(out / METRICS)
    epoch = statistics.median(r["seconds"] for r in rows[1:] or rows)  # the first warms up
    return {"wall_s": wall, "epoch_s": epoch, "losses": [r["train_loss"] for r in rows]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cfg = {**CONFIG, "train": {**CONFIG["train"], "epochs": args.epochs}}
    cfg["train"]["batch_size"] = args.batch_size
    runs: dict[str, list[dict]] = {"one": [], "many": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            runs["one"].append(one_run(cfg, Path(tmp) / f"one-{i}", None))
            runs["many"].append(one_run(cfg, Path(tmp) / f"many-{i}", args.nproc))
    one, many = (
        {
            "wall_s": statistics.median(r["wall_s"] for r in rs),
            "epoch_s": statistics.median(r["epoch_s"] for r in rs),
            "losses": rs[0]["losses"],
        }
        for rs in (runs["one"], runs["many"])
    )
    worst = max(abs(a - b) / abs(a) for a, b in zip(one["losses"], many["losses"]))
    report = {
        "cores": os.cpu_count(),
        "nproc": args.nproc,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "one_epoch_s": round(one["epoch_s"], 4),
        "nproc_epoch_s": round(many["epoch_s"], 4),
        "speedup": round(one["epoch_s"] / many["epoch_s"], 3),
        "one_wall_s": round(one["wall_s"], 2),
        "nproc_wall_s": round(many["wall_s"], 2),
        "max_rel_loss_diff": worst,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{'':14}{'1 process':>12}{f'--nproc {args.nproc}':>12}")
    print(f"{'s / epoch':14}{report['one_epoch_s']:>12.4f}{report['nproc_epoch_s']:>12.4f}")
    print(f"{'wall s':14}{report['one_wall_s']:>12.2f}{report['nproc_wall_s']:>12.2f}")
    print(f"speed-up per epoch x{report['speedup']} on {report['cores']} cores; "
          f"largest relative difference of the per-epoch losses {worst:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
