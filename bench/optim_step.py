"""Optimizer step time: trainlab.optim (default arguments) against torch.optim's fastest CPU path
(fused where torch has it, else foreach) and torch's default path, on a model of 10M+ parameters
in several tensors, all in one process with the measurements interleaved, plus the memory
bandwidth floor: the bytes one step must read and write, at the bandwidth of an in-place
a.add_(b) over a tensor of the same total size, timed in the same interleaved loop.

A second table times the same optimizers on a small model, the MNIST-1D CNN of
examples/mnist1d-cnn.yaml (53K parameters in 11 tensors), where a step's fixed cost (Python,
dispatch) rather than memory traffic sets the time: ours (default arguments, as the trainer builds
it: a short run stays on the multi-tensor path) and ours compiled, against torch's fused and
foreach paths and its default.

Ours is measured as a user gets it: default arguments, after the warm-up in which it switches to
its compiled update at the step compiled.compile_from() gives (see trainlab/optim/compiled.py).
The warm-up's eager steps and compile time are reported, and what those first steps cost against
the same number of steps of torch's fastest path (first/fast).

Clock: with one thread (the default) each step is timed in CPU time of the calling thread
(time.thread_time), which does not count the time the OS gives other processes: on a shared,
loaded machine wall-clock medians drifted by 20-50% between runs, thread time by a few percent.
With more threads the clock is wall time. Ratios are given of the medians and of the minimums.

    .venv/bin/python bench/optim_step.py [--json] [--case large|small|both] [--only adam ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

import trainlab.optim as ours
from trainlab.config import ModelConfig
from trainlab.nn.models import build_model
from trainlab.optim.compiled import ENV_VAR, compile_from

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


def warm_up(opt: torch.optim.Optimizer, limit_steps: int) -> dict[str, Any]:
    """Step until our optimizer has switched to its compiled path, or for `limit_steps` steps
    (it then stays uncompiled: plain SGD, for instance)."""
    start, eager_steps = time.perf_counter(), 0
    while eager_steps < limit_steps:
        before = time.perf_counter()
        opt.step()
        if opt.execution_path == "compiled":
            now = time.perf_counter()
            return {
                "eager_steps": eager_steps,
                "first_compiled_step_s": now - before,
                "warmup_s": now - start,
            }
        eager_steps += 1
    return {
        "eager_steps": eager_steps,
        "first_compiled_step_s": None,
        "warmup_s": time.perf_counter() - start,
    }


def bench_one(
    name: str,
    grads: list[torch.Tensor],
    repeats: int,
    floor: Floor,
    warmup_limit: int,
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
    }
    first = compile_from(variants["ours"].param_groups[0]["params"])
    warm = warm_up(variants["ours"], warmup_limit if first is None else first + 1)
    fastest = variants["torch_fastest"]
    begin = time.perf_counter()
    for _ in range(warm["eager_steps"] + 1):  # torch's first steps, as many as our warm-up's
        fastest.step()
    sync(device)
    warm["first_over_fastest"] = warm["warmup_s"] / (time.perf_counter() - begin)
    for opt in variants.values():  # first steps allocate state
        opt.step()
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
        "floor_ms": 1e3 * floor_s,
        "bytes_per_param": bytes_per_param,
        "add_bandwidth_gb_s": bandwidth / 1e9,
        "ours_over_fastest": med["ours"] / med["torch_fastest"],
        "ours_over_fastest_min": low["ours"] / low["torch_fastest"],
        "default_over_ours": med["torch_default"] / med["ours"],
        "ours_over_floor": med["ours"] / floor_s,
        **warm,
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
        saved = os.environ.get(ENV_VAR)
        if key == "ours_compiled":
            os.environ[ENV_VAR] = "1"
        try:
            for _ in range(warm_steps):
                opt.step()
        finally:
            if key == "ours_compiled" and saved is None:
                del os.environ[ENV_VAR]
            elif key == "ours_compiled":
                os.environ[ENV_VAR] = saved
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
        f"floor = bytes moved / a.add_(b) bandwidth ({bandwidths} GB/s)"
    )
    head = (
        f"{'optimizer':<10}{'ours':>8}{'fastest':>9}{'(path)':>9}{'default':>9}{'floor':>8}"
        f"{'ours/fast':>11}{'(min)':>7}{'def/ours':>10}{'ours/floor':>11}{'eager+compile':>15}"
        f"{'first/fast':>12}"
    )
    print(head)
    for r in rows:
        compile_s = r["first_compiled_step_s"]
        warm = f"{r['eager_steps']}+{compile_s:.1f}s" if compile_s is not None else "not compiled"
        print(
            f"{r['optimizer']:<10}{r['ours_ms']:>8.2f}{r['torch_fastest_ms']:>9.2f}"
            f"{r['torch_fastest_path']:>9}{r['torch_default_ms']:>9.2f}{r['floor_ms']:>8.2f}"
            f"{r['ours_over_fastest']:>11.2f}{r['ours_over_fastest_min']:>7.2f}"
            f"{r['default_over_ours']:>10.2f}"
            f"{r['ours_over_floor']:>11.2f}{warm:>15}{r['first_over_fastest']:>12.1f}"
        )


def print_small(result: dict[str, Any]) -> None:
    print(
        f"small model (examples/mnist1d-cnn.yaml): {result['params'] / 1e3:.0f}K parameters in "
        f"{result['tensors']} tensors on {result['device']}, {result['threads']} thread(s); "
        f"medians of {result['repeats']} interleaved steps (us, {result['clock']})"
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
        "--warmup-limit",
        type=int,
        default=200,
        help="warm-up steps of ours where it never compiles (plain SGD)",
    )
    args = ap.parse_args(argv)
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
                rows.append(bench_one(name, grads, args.repeats, floor, args.warmup_limit, clock))
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
