"""Optimizer step time: trainlab.optim (default arguments) against torch.optim's fastest CPU path
(fused where torch has it, else foreach) and torch's default path, on a model of 10M+ parameters
in several tensors, all in one process with the measurements interleaved, plus the memory
bandwidth floor: the bytes one step must read and write, at the bandwidth of an in-place
a.add_(b) over a tensor of the same total size, timed in the same interleaved loop.

The first steps (--first, 200 by default) are timed apart, in wall time with the compile
included (what a user waits for): a fresh optimizer of ours and a fresh one of torch's fastest
path, stepped alternately; `first/fast` is the ratio of their sums, and `switch` the step at which
ours took its compiled path (if it did) and that step's wall time. --cache cold points inductor at
a fresh empty cache folder for the run (every graph compiled from scratch; the first compile in
the process also pays inductor's start); warm (the default) uses the cache as it is, so run it
once before measuring warm. Then the steady state: ours (as a user gets it, past its first steps),
ours compiled from its first step (TRAINLAB_COMPILE=1: the path the default took before it ran
torch's kernels), torch's fastest and default paths and the floor, interleaved.

A second table times the same optimizers on a small model, the MNIST-1D CNN of
examples/mnist1d-cnn.yaml (53K parameters in 11 tensors), where a step's fixed cost (Python,
dispatch) rather than memory traffic sets the time: ours (default arguments, as the trainer builds
it) and ours compiled, against torch's fused and foreach paths and its default.

Clock (steady state): with one thread (the default) each step is timed in CPU time of the
calling thread (time.thread_time), which does not count the time the OS gives other processes:
on a shared, loaded machine wall-clock medians drifted by 20-50% between runs, thread time by a
few percent. With more threads the clock is wall time. Ratios are given of the medians and of the
minimums. The JSON holds the load average at the end of each case.

    .venv/bin/python bench/optim_step.py [--json] [--case large|small|both] [--only adam ...]
                                         [--first 200] [--cache warm|cold]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

import trainlab.optim as ours
from trainlab.config import ModelConfig
from trainlab.nn.models import build_model
from trainlab.optim.compiled import ENV_VAR

# 7 tensors, 13.6M parameters: three 2048x2048 weights, a 1024x1024 one and their biases
SHAPES = [(2048, 2048), (2048,), (2048, 2048), (2048,), (2048, 2048), (1024, 1024), (1024,)]

# name -> (our class, torch class, kwargs, torch's fastest CPU flag, bytes moved per parameter)
# bytes: float32 reads + writes of one step, e.g. Adam reads param, grad, 2 moments, writes 3
SPECS: dict[str, tuple[type, type, dict[str, Any], dict[str, bool], int]] = {
    "sgd": (ours.SGD, torch.optim.SGD, {"lr": 0.01}, {"fused": True}, 12),
    "momentum": (ours.SGD, torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}, {"fused": True}, 20),
    "nesterov": (
        ours.SGD,
        torch.optim.SGD,
        {"lr": 0.01, "momentum": 0.9, "nesterov": True},
        {"fused": True},
        20,
    ),
    "adagrad": (ours.Adagrad, torch.optim.Adagrad, {"lr": 0.01}, {"fused": True}, 20),
    "rmsprop": (ours.RMSprop, torch.optim.RMSprop, {"lr": 0.001}, {"foreach": True}, 20),
    "adam": (ours.Adam, torch.optim.Adam, {"lr": 0.001}, {"fused": True}, 28),
    "adamw": (ours.AdamW, torch.optim.AdamW, {"lr": 0.001}, {"fused": True}, 28),
}


def small_shapes() -> list[tuple[int, ...]]:
    """The parameter shapes of examples/mnist1d-cnn.yaml's model (MNIST-1D: 1 x 40 signals, 10
    classes; three conv stages of 32, 64, 128 channels with batch norm, then a linear layer)."""
    cfg = ModelConfig(kind="cnn", width=32, depth=3, kernel_size=5, norm="batch")
    return [tuple(p.shape) for p in build_model(cfg, (1, 40), 10).parameters()]


def make_params(gen: torch.Generator, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    params = [torch.randn(g.shape, generator=gen).to(g.device).requires_grad_() for g in grads]
    for p, g in zip(params, grads):
        p.grad = g
    return params


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    fn: Callable[[], Any], device: torch.device, clock: Callable[[], float] = time.perf_counter
) -> float:
    sync(device)
    start = clock()
    fn()
    sync(device)
    return clock() - start


def pick_clock(threads: int, device: torch.device) -> tuple[str, Callable[[], float]]:
    """CPU time of this thread when all the work runs on it (one torch thread on the CPU)."""
    if threads == 1 and device.type == "cpu":
        return "thread_time", time.thread_time
    return "wall", time.perf_counter


class Floor:
    """The memory-bandwidth floor: an in-place a.add_(b) over as many float32 elements as the
    model has parameters (reads a and b, writes a: 12 bytes per element), timed alongside."""

    def __init__(self, numel: int, device: torch.device) -> None:
        self.a = torch.ones(numel, device=device)
        self.b = torch.ones(numel, device=device)

    def step(self) -> None:
        self.a.add_(self.b)


def first_steps(ours: torch.optim.Optimizer, fastest: torch.optim.Optimizer, n: int) -> dict:
    """The first `n` steps of two fresh optimizers, interleaved step by step, in wall time
    (compile included: the issue's quantity), and where ours switched to its compiled path."""
    device = ours.param_groups[0]["params"][0].device
    spent = {"ours": 0.0, "fastest": 0.0}
    switch, switch_s = None, None
    for step in range(1, n + 1):
        took = timed(ours.step, device)
        spent["ours"] += took
        if switch is None and ours.execution_path == "compiled":
            switch, switch_s = step, took
        spent["fastest"] += timed(fastest.step, device)
    return {
        "first_steps": n,
        "first_ours_s": spent["ours"],
        "first_fastest_s": spent["fastest"],
        "first_over_fastest": spent["ours"] / spent["fastest"],
        "switch_step": switch,
        "switch_step_s": switch_s,
        "path_in_first_steps": ours.execution_path,
    }


def compiled_from_step_1(opt: torch.optim.Optimizer, steps: int) -> None:
    """Warm up an optimizer of ours under TRAINLAB_COMPILE=1 (read when a group's step plan is
    made, at its first step): compiled from its first compilable step."""
    saved = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = "1"
    try:
        for _ in range(steps):
            opt.step()
    finally:
        if saved is None:
            del os.environ[ENV_VAR]
        else:
            os.environ[ENV_VAR] = saved


def bench_one(
    name: str,
    grads: list[torch.Tensor],
    repeats: int,
    floor: Floor,
    first_n: int,
    clock: Callable[[], float],
) -> dict[str, Any]:
    ours_cls, torch_cls, kwargs, fastest_flag, bytes_per_param = SPECS[name]
    device = grads[0].device
    if device.type == "cuda" and name == "adagrad":
        fastest_flag = {"foreach": True}  # torch's fused Adagrad is CPU-only
    gen = torch.Generator().manual_seed(0)
    variants = {
        "ours": ours_cls(make_params(gen, grads), **kwargs),
        "torch_fastest": torch_cls(make_params(gen, grads), **kwargs, **fastest_flag),
        "torch_default": torch_cls(make_params(gen, grads), **kwargs),
        "ours_compiled": ours_cls(make_params(gen, grads), **kwargs),
    }
    first = first_steps(variants["ours"], variants["torch_fastest"], first_n)
    compiled_from_step_1(variants["ours_compiled"], 2)
    for key in ("torch_default",):  # first steps allocate state
        variants[key].step()
    variants["add"] = floor
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for key, opt in variants.items():
            times[key].append(timed(opt.step, device, clock))
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    numel = sum(g.numel() for g in grads)
    bandwidth = 12 * numel / med["add"]
    floor_s = bytes_per_param * numel / bandwidth
    return {
        "optimizer": name,
        "ours_path": variants["ours"].execution_path,
        "torch_fastest_path": next(iter(fastest_flag)),
        "ours_ms": 1e3 * med["ours"],
        "torch_fastest_ms": 1e3 * med["torch_fastest"],
        "torch_default_ms": 1e3 * med["torch_default"],
        "ours_compiled_path": variants["ours_compiled"].execution_path,
        "ours_compiled_ms": 1e3 * med["ours_compiled"],
        "floor_ms": 1e3 * floor_s,
        "bytes_per_param": bytes_per_param,
        "add_bandwidth_gb_s": bandwidth / 1e9,
        "ours_over_fastest": med["ours"] / med["torch_fastest"],
        "ours_over_fastest_min": low["ours"] / low["torch_fastest"],
        "compiled_over_fastest": med["ours_compiled"] / med["torch_fastest"],
        "default_over_ours": med["torch_default"] / med["ours"],
        "ours_over_floor": med["ours"] / floor_s,
        **first,
    }


def bench_small(
    name: str, grads: list[torch.Tensor], repeats: int, warm_steps: int, clock: Callable[[], float]
) -> dict[str, Any]:
    """One step on the small model: ours (default arguments: the multi-tensor path until the
    ski-rental rule compiles, see compiled.py) and ours compiled from its first step (its warm-up
    runs under TRAINLAB_COMPILE=1, read when a param group's step plan is made) against torch's
    fused path (where it has one), its foreach path and its default, interleaved, after
    `warm_steps` steps each."""
    ours_cls, torch_cls, kwargs, fastest_flag, _ = SPECS[name]
    device = grads[0].device
    gen = torch.Generator().manual_seed(0)
    variants = {
        "ours": ours_cls(make_params(gen, grads), **kwargs),
        "ours_compiled": ours_cls(make_params(gen, grads), **kwargs),
    }
    if "fused" in fastest_flag and not (device.type == "cuda" and name == "adagrad"):
        variants["torch_fused"] = torch_cls(make_params(gen, grads), **kwargs, fused=True)
    variants["torch_foreach"] = torch_cls(make_params(gen, grads), **kwargs, foreach=True)
    variants["torch_default"] = torch_cls(make_params(gen, grads), **kwargs)
    for key, opt in variants.items():
        if key == "ours_compiled":
            compiled_from_step_1(opt, warm_steps)
        else:
            for _ in range(warm_steps):
                opt.step()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for key, opt in variants.items():
            times[key].append(timed(opt.step, device, clock))
    med = {k: statistics.median(v) for k, v in times.items()}
    fused = med.get("torch_fused")
    return {
        "optimizer": name,
        "ours_path": variants["ours"].execution_path,
        "ours_us": 1e6 * med["ours"],
        "torch_fused_us": None if fused is None else 1e6 * fused,
        "ours_compiled_path": variants["ours_compiled"].execution_path,
        "ours_compiled_us": 1e6 * med["ours_compiled"],
        "ours_compiled_over_fused": None if fused is None else med["ours_compiled"] / fused,
        "torch_foreach_us": 1e6 * med["torch_foreach"],
        "torch_default_us": 1e6 * med["torch_default"],
        "ours_over_fused": None if fused is None else med["ours"] / fused,
        "ours_over_foreach": med["ours"] / med["torch_foreach"],
        "ours_over_default": med["ours"] / med["torch_default"],
    }


def print_large(result: dict[str, Any]) -> None:
    rows = result["rows"]
    bandwidths = ", ".join(f"{r['add_bandwidth_gb_s']:.0f}" for r in rows)
    print(
        f"{result['params'] / 1e6:.1f}M parameters in {result['tensors']} tensors on "
        f"{result['device']}, {result['threads']} thread(s); medians of {result['repeats']} "
        f"interleaved steps (ms, {result['clock']}); "
        f"floor = bytes moved / a.add_(b) bandwidth ({bandwidths} GB/s); "
        f"first {rows[0]['first_steps']} steps: wall time, compile included, "
        f"inductor cache {result['inductor_cache']}; load average "
        + " ".join(f"{x:.1f}" for x in result["load_average"])
    )
    head = (
        f"{'optimizer':<10}{'ours':>7}{'(path)':>10}{'fastest':>9}{'(path)':>9}{'default':>9}"
        f"{'compiled':>9}{'floor':>7}{'ours/fast':>10}{'(min)':>6}{'compiled/fast':>14}"
        f"{'def/ours':>9}{'ours/floor':>11}{'switch':>13}{'first/fast':>11}"
    )
    print(head)
    for r in rows:
        switch = "-"
        if r["switch_step"] is not None:
            switch = f"{r['switch_step']}: {r['switch_step_s']:.1f}s"
        print(
            f"{r['optimizer']:<10}{r['ours_ms']:>7.2f}{r['ours_path']:>10}"
            f"{r['torch_fastest_ms']:>9.2f}{r['torch_fastest_path']:>9}"
            f"{r['torch_default_ms']:>9.2f}{r['ours_compiled_ms']:>9.2f}{r['floor_ms']:>7.2f}"
            f"{r['ours_over_fastest']:>10.2f}{r['ours_over_fastest_min']:>6.2f}"
            f"{r['compiled_over_fastest']:>14.2f}{r['default_over_ours']:>9.2f}"
            f"{r['ours_over_floor']:>11.2f}{switch:>13}{r['first_over_fastest']:>11.2f}"
        )


def print_small(result: dict[str, Any]) -> None:
    print(
        f"small model (examples/mnist1d-cnn.yaml): {result['params'] / 1e3:.0f}K parameters in "
        f"{result['tensors']} tensors on {result['device']}, {result['threads']} thread(s); "
        f"medians of {result['repeats']} interleaved steps (us, {result['clock']}); load average "
        + " ".join(f"{x:.1f}" for x in result["load_average"])
    )
    print(
        f"{'optimizer':<10}{'ours':>8}{'(path)':>9}{'fused':>8}{'foreach':>9}{'default':>9}"
        f"{'ours/fused':>12}{'ours/foreach':>14}{'ours/default':>14}"
        f"{'compiled':>10}{'(path)':>10}{'compiled/fused':>16}"
    )

    def num(v: float | None, width: int, digits: int) -> str:
        return f"{'-':>{width}}" if v is None else f"{v:>{width}.{digits}f}"

    for r in result["rows"]:
        print(
            f"{r['optimizer']:<10}{r['ours_us']:>8.0f}{r['ours_path']:>9}"
            f"{num(r['torch_fused_us'], 8, 0)}{r['torch_foreach_us']:>9.0f}"
            f"{r['torch_default_us']:>9.0f}{num(r['ours_over_fused'], 12, 2)}"
            f"{r['ours_over_foreach']:>14.2f}{r['ours_over_default']:>14.2f}"
            f"{r['ours_compiled_us']:>10.0f}{r['ours_compiled_path']:>10}"
            f"{num(r['ours_compiled_over_fused'], 16, 2)}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--repeats", type=int, default=25, help="timed steps per variant (large)")
    ap.add_argument(
        "--small-repeats", type=int, default=400, help="timed steps per variant (small model)"
    )
    ap.add_argument(
        "--case",
        choices=["large", "small", "both"],
        default="both",
        help="the 13.6M-parameter model, the small one, or both (default)",
    )
    ap.add_argument("--only", nargs="*", choices=list(SPECS), help="a subset of optimizers")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument(
        "--first",
        type=int,
        default=200,
        help="the first steps timed in wall time, compile included (large model; default 200)",
    )
    ap.add_argument(
        "--cache",
        choices=["warm", "cold"],
        default="warm",
        help="inductor's on-disk cache: as it is (warm) or a fresh empty folder (cold)",
    )
    args = ap.parse_args(argv)
    cold = None
    if args.cache == "cold":  # before anything compiles: inductor reads it when it first looks
        cold = tempfile.TemporaryDirectory(prefix="inductor-cold-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cold.name
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock_name, clock = pick_clock(args.threads, device)
    names = args.only or list(SPECS)
    out: dict[str, Any] = {"torch": torch.__version__}
    for case in ("large", "small") if args.case == "both" else (args.case,):
        gen = torch.Generator().manual_seed(1)
        shapes = SHAPES if case == "large" else small_shapes()
        grads = [(torch.randn(s, generator=gen) * 1e-2).to(device) for s in shapes]
        numel = sum(g.numel() for g in grads)
        rows = []
        for name in names:
            if case == "large":
                floor = Floor(numel, device)
                rows.append(bench_one(name, grads, args.repeats, floor, args.first, clock))
            else:
                rows.append(bench_small(name, grads, args.small_repeats, 20, clock))
            print(f"done {case} {name}", file=sys.stderr)
        out[case] = {
            "params": numel,
            "tensors": len(shapes),
            "threads": args.threads,
            "device": str(device),
            "clock": clock_name,
            "repeats": args.repeats if case == "large" else args.small_repeats,
            "inductor_cache": args.cache,
            "load_average": os.getloadavg(),
            "rows": rows,
        }
    if args.json:
        print(json.dumps(out))
        return 0
    for case, show in (("large", print_large), ("small", print_small)):
        if case in out:
            show(out[case])
    return 0


if __name__ == "__main__":
    sys.exit(main())
