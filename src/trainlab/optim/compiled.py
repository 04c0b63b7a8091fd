"""The compiled path: one update function, compiled by torch.compile into a single fused pass per
tensor (each element of param, grad and state read once and written once), so the step runs at
the machine's memory bandwidth like torch's fused kernels, without being written in C++.

When: compiling costs seconds (about 3-7 s cold, under 1 s when inductor's on-disk cache already
holds the graph), so by default a param group is compiled only once it is large
(COMPILE_MIN_NUMEL elements) and has already spent COMPILE_AFTER_SECONDS in uncompiled steps (the
ski-rental rule: keep paying per step until the bill reaches the price of buying, so a short run
never waits for a compiler, and a long run pays at most twice the best possible). The environment
variable TRAINLAB_COMPILE overrides it: 0 never compiles, 1 compiles every group from its first
step, auto (the default) follows the rule. If compiling fails (no C++ compiler, for instance) we
warn once and stay on the multi-tensor path for the rest of the process.

How: the hyperparameters go in as 0-d float64 tensors, so a learning rate that changes every step
(an LR scheduler) does not recompile; flags (bools) are part of the graph. Each distinct problem
(update, flags, tensor shapes) gets its own copy of the driver's code object, hence its own dynamo
cache, so many models in one process never hit dynamo's recompile limit.
"""

from __future__ import annotations

import os
import types
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

from trainlab.errors import UserError

COMPILE_MIN_NUMEL = 1 << 19
COMPILE_AFTER_SECONDS = 2.0
ENV_VAR = "TRAINLAB_COMPILE"
_CACHE_SIZE = 64

_cache: OrderedDict[tuple, Callable[..., None]] = OrderedDict()
_broken: str | None = None  # why compiling failed in this process, if it did


def mode() -> str:
    """'off', 'always' or 'auto', from TRAINLAB_COMPILE (unset means auto)."""
    raw = os.environ.get(ENV_VAR, "auto").strip().lower()
    if raw in ("0", "off", "false", "no"):
        return "off"
    if raw in ("1", "on", "true", "yes", "always"):
        return "always"
    if raw in ("", "auto"):
        return "auto"
    raise UserError(f"{ENV_VAR}: must be 0, 1 or auto, got {raw!r}")


def available() -> bool:
    """False once compiling has failed in this process."""
    return _broken is None


def _apply(update, params, grads, buffers, h):  # noqa: ANN001, ANN202 (traced by dynamo)
    for i in range(len(params)):
        update(params[i], grads[i], {name: b[i] for name, b in buffers.items()}, h)


def _meta(t: torch.Tensor) -> tuple:
    return (tuple(t.shape), t.stride(), t.dtype, t.device, t.storage_offset())


def _key(update: Callable, params: list[torch.Tensor], grads: list[torch.Tensor],
         buffers: dict[str, list[torch.Tensor]], h: dict[str, Any]) -> tuple:
    """Everything the compiled graph depends on: update, flags, each tensor's layout, threads."""
    flags = tuple(sorted((k, v) for k, v in h.items() if not isinstance(v, float)))
    tensors = tuple(_meta(t) for t in params) + tuple(_meta(t) for t in grads)
    bufs = tuple((name, tuple(_meta(t) for t in b)) for name, b in sorted(buffers.items()))
    return (update, flags, tensors, bufs, torch.get_num_threads())


def _build() -> Callable[..., None]:
    code = _apply.__code__.replace(co_name=f"_apply_{len(_cache)}")
    fresh = types.FunctionType(code, _apply.__globals__, code.co_name)
    return torch.compile(fresh, dynamic=False, fullgraph=True)


def run(update: Callable, params: list[torch.Tensor], grads: list[torch.Tensor],
        buffers: dict[str, list[torch.Tensor]], h: dict[str, Any], memo: dict) -> bool:
    """Apply `update` to every tensor in one compiled call; False (nothing changed) when compiling
    is impossible, so the caller runs its uncompiled path instead. `memo` is the caller's own
    dict (one per param group): it remembers the compiled function for these very parameters, so a
    step does not rebuild the cache key from every tensor's metadata."""
    global _broken
    if _broken is not None:
        return False
    flags = tuple(sorted((k, v) for k, v in h.items() if not isinstance(v, float)))
    quick = (update, flags, tuple(map(id, params)))
    fn = memo.get(quick)
    if fn is None:
        key = _key(update, params, grads, buffers, h)
        fn = _cache.get(key)
        if fn is None:
            fn = _build()
            _cache[key] = fn
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        memo.clear()
        memo[quick] = fn
    scalars = {k: torch.tensor(v, dtype=torch.float64) if isinstance(v, float) else v
               for k, v in h.items()}
    try:
        fn(update, params, grads, buffers, scalars)
    except Exception as exc:  # compiling failed before the graph ran: nothing was modified
        _broken = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        _cache.clear()
        memo.clear()
        warnings.warn(f"trainlab.optim: torch.compile failed ({_broken}); using the multi-tensor "
                      f"path from now on (set {ENV_VAR}=0 to skip compiling)", stacklevel=3)
        return False
    return True
