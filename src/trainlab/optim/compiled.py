"""The compiled path: one update function, compiled by torch.compile into a single fused pass per
tensor (each element of param, grad and state read once and written once), so the step runs at
the machine's memory bandwidth like torch's fused kernels, without being written in C++.

When: compiling costs seconds (measured on the shared 2-core CPU box this was written on, load 2.5:
the first graph of a process 16 s of wall time with inductor's on-disk cache cold, 5 s warm
(inductor's own start); later ones about 0.5 s per large tensor cold, 74 tensors: ~14 s, a tenth of
that warm), and the compiled update rounds differently from the eager ones (last bits). So the
switch is a function of the parameters and the step count only, never of the clock, and a resumed
run switches at the same step as an uninterrupted one (the step count is in the state_dict). By
default (TRAINLAB_COMPILE=auto) a CPU param group runs compiled from step `compile_from(params)`:
the ski-rental rule with modelled costs instead of measured ones (keep paying per step until the
bill reaches the price of buying: a long run pays at most about twice the best possible; with the
compile running ahead, below, the switch step is also when the modelled compile is done). The
modelled eager step is EAGER_NS_PER_ELEMENT per element plus EAGER_US_PER_TENSOR per tensor
(measured: 0.6-2.3 ns per element on 13.6M parameters, 13-60 us per small tensor, before the
multi-tensor path ran in cache-sized blocks, blocks.py; kept, so that the switch step, hence the
numbers, did not move), the modelled
compile COMPILE_SECONDS or SECONDS_PER_TENSOR per compiled tensor if more; groups with no tensor of
COMPILE_MIN_NUMEL elements or more never compile. Examples: 13.6M parameters in 7 tensors compile
from step 170; the MNIST-1D CNN (53K parameters in 11 tensors) from step 13,427, so its short runs
stay on the multi-tensor path. On a CUDA device the multi-tensor path is about as fast (both
launch-bound on an H100 at 13.6M parameters), so there it compiles only when asked.
TRAINLAB_COMPILE overrides the rule: 0 never compiles, N (an integer >= 1) compiles from step N (1:
from the first step), auto (the default) follows the rule; fused=True asks for step 1 for one
optimizer. If compiling fails (no C++ compiler, for instance) we warn once and stay on the eager
paths for the rest of the process.

Compiling ahead (`ahead`): the graphs a group will run from its switch step are compiled in one
background thread, from the group's first eager step or AHEAD_STEPS steps before its switch if that
is later, while the main thread keeps stepping; the switch step does not move: if the compile is
not done by then, that step waits for it (run), so the numbers are the same whatever the load and
however long the compiler takes (tests/test_optim.py holds the compile back and compares bitwise).
The compile traces and runs the update once on scratch tensors with the live ones' layouts (so for
its duration one more copy of a chunk's parameter, gradient and state memory), never on the live
tensors, and learns the graph's input order there, so the main thread calls the graph directly from
its first compiled step, without dynamo. Traded: a run that ends inside that window, before its
switch step, has spent a compile on another core, and waits at exit for the one still running
(seconds; cut off by the interpreter's shutdown, a compile aborted the process: "terminate called
without an active exception"); while dynamo and inductor run Python in that thread, the main thread
shares the GIL with them (torch's ops release it while they compute); dynamo serialises compiles
across threads (its compile_lock), so another torch.compile in the main thread meanwhile waits for
ours, and inductor's config patches (_OPTIONS) are process-wide while ours compiles
(TRAINLAB_COMPILE=0 or 1 compile nothing ahead: there is nothing before the switch).

How: the float hyperparameters go in packed in one tensor, so a learning rate that changes every
step (an LR scheduler) does not recompile; flags (bools) are baked into the graph. On the CPU
that tensor is float32 unless a parameter is float64: the kernel computes in float32 anyway (as
torch's own float32 kernels do with their scalars), and reading float64 scalars converted inside
the loop measured 2-3% slower per step. The tensor is made once per param group and refilled in
place each step. After its first call a graph is called directly, without dynamo (see _Graph).
Large tensors go in chunks of at most CHUNK (a graph's compile time grows faster than its size),
each chunk's layout getting its own copy of the driver's code object, hence its own dynamo
cache: many models in one process never hit dynamo's recompile limit, and chunks of the same
layouts share one compiled function. Small tensors (biases, norms) join the compiled path, in the
large tensors' chunk when all fit in one (one call per step), else as a chunk of their own when a
group has at most SMALL_IN_GRAPH of them: on the CPU a multi-tensor op
is a loop of per-tensor ops, so the ~8 ops of an Adam update cost ~0.1 ms per small tensor per
step (measured: 3 biases beside 13.6M parameters, 0.3-0.6 ms of an 8 ms step), while compiling
costs ~0.5-1 s per tensor, so a model with many of them (a deep net's norms) keeps those on the
multi-tensor path rather than wait minutes for the compiler.
"""

from __future__ import annotations

import atexit
import itertools
import math
import operator
import os
import queue
import threading
import types
import warnings
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import torch

from trainlab.errors import UserError

COMPILE_MIN_NUMEL = 1 << 14
COMPILE_SECONDS = 3.0  # modelled cold compile cost of a param group
SECONDS_PER_TENSOR = 0.5  # ... or per compiled tensor, if more (74 tensors: ~14 s measured)
EAGER_NS_PER_ELEMENT = 1.5  # modelled multi-tensor step cost per element
EAGER_US_PER_TENSOR = 30.0  # ... and per tensor (dispatch, Python)
ENV_VAR = "TRAINLAB_COMPILE"
SMALL_NUMEL = 1 << 14  # tensors below this are "small"
SMALL_IN_GRAPH = 16  # a group's small tensors are compiled too when there are at most this many
CHUNK = 16  # tensors per compiled graph at most
_CACHE_SIZE = 64
_serial = itertools.count()

_cache: OrderedDict[tuple, _Graph] = OrderedDict()
_broken: str | None = None  # why compiling failed in this process, if it did
_jobs: queue.SimpleQueue | None = None  # the compile-ahead thread's queue (see ahead)
_thread: threading.Thread | None = None  # ... and the thread
#: compiling ahead starts at most this many steps before the switch step: a run that stops well
#: before its switch (the MNIST-1D CNN's, at step 13,427) spends no compile
AHEAD_STEPS = 500
_AHEAD = "ahead"  # in a group's memo: its graphs are compiling ahead, or compiled


def mode() -> str | int:
    """'auto', or the step from which to compile (0: never), from TRAINLAB_COMPILE."""
    raw = os.environ.get(ENV_VAR, "auto").strip().lower()
    if raw in ("off", "false", "no"):
        return 0
    if raw in ("on", "true", "yes", "always"):
        return 1
    if raw in ("", "auto"):
        return "auto"
    if raw.isdigit():
        return int(raw)
    raise UserError(f"{ENV_VAR}: must be auto, 0 (never) or a step number N >= 1, got {raw!r}")


def compile_from(params: list[torch.Tensor]) -> int | None:
    """The step from which TRAINLAB_COMPILE=auto runs a param group compiled (None: never): the
    first step at which the modelled eager steps have cost the modelled compile (see above)."""
    if params[0].device.type != "cpu":
        return None
    large = [p.numel() for p in params if p.numel() >= SMALL_NUMEL]
    if sum(large) < COMPILE_MIN_NUMEL:
        return None
    small = len(params) - len(large)
    compiled = len(large) + (small if small <= SMALL_IN_GRAPH else 0)
    cost = max(COMPILE_SECONDS, SECONDS_PER_TENSOR * compiled)
    numel = sum(p.numel() for p in params)
    eager = 1e-9 * EAGER_NS_PER_ELEMENT * numel + 1e-6 * EAGER_US_PER_TENSOR * len(params)
    return max(2, math.ceil(cost / eager))


def available() -> bool:
    """False once compiling has failed in this process."""
    return _broken is None


def _apply(update, params, grads, buffers, flags, names, values):  # noqa: ANN001, ANN202
    """What gets compiled: the update over a chunk of tensors, its float hyperparameters
    unpacked from tensors (one 1-d tensor on the CPU: one tensor to build per step; no
    recompiling when they change), its flags baked in."""
    h = dict(flags)
    for j, name in enumerate(names):
        h[name] = values[j]
    for i in range(len(params)):
        update(params[i], grads[i], {name: b[i] for name, b in buffers.items()}, h)


def _meta(t: torch.Tensor) -> tuple:
    return (tuple(t.shape), t.stride(), t.dtype, t.device, t.storage_offset())


def _signature(
    i: int,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    buffers: dict[str, list[torch.Tensor]],
) -> tuple:
    """The layout of tensor i with its gradient and state: what its compiled code depends on."""
    return (
        _meta(params[i]),
        _meta(grads[i]),
        tuple((name, _meta(b[i])) for name, b in sorted(buffers.items())),
    )


class _Graph:
    """One compiled update (per layout key; chunks of the same layouts share it). Its first call
    goes through torch.compile (dynamo traces, inductor compiles); our backend keeps inductor's
    callable and, from the tensors dynamo handed it, the order of its inputs. Later CPU steps call
    that callable directly and skip dynamo's guard evaluation and wrappers (measured ~20 us per
    call on small tensors, 3-4x that after a step has swept 200 MB through the caches). What the
    guards checked is checked elsewhere: inductor's size/stride asserts run on every call (a
    mismatch raises before any kernel runs; we then go back to dynamo, which recompiles), run()
    replans when a parameter's storage moves (a new dtype or device), and the flags and layouts
    are part of the cache key. A graph that dynamo compiled twice stays on dynamo's path."""

    __slots__ = ("fresh", "compiled_fn", "direct", "order", "captures", "pending")

    def __init__(self) -> None:
        code = _apply.__code__.replace(co_name=f"_apply_{next(_serial)}")
        self.fresh = types.FunctionType(code, _apply.__globals__, code.co_name)
        self.compiled_fn: Callable[..., Any] | None = None
        self.direct: Callable[..., Any] | None = None
        self.order: list[int] | None = None  # None: not learned yet; []: no direct calls
        self.captures: list[tuple[Callable[..., Any], list[int]]] = []
        #: the compile running ahead in the background thread (see ahead), until run() waits
        self.pending: Future | None = None

    @property
    def fn(self) -> Callable[..., Any]:
        """The torch.compile'd driver, made on first use (importing dynamo takes seconds: in
        the background thread when compiling ahead)."""
        if self.compiled_fn is None:
            self.compiled_fn = torch.compile(
                self.fresh, backend=self._compile, dynamic=False, fullgraph=True
            )
        return self.compiled_fn

    def _compile(self, gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        """torch.compile's inductor backend with our options, keeping what it built."""
        from torch._inductor.compile_fx import compile_fx

        compiled = compile_fx(gm, example_inputs, config_patches=_OPTIONS)
        self.captures.append((compiled, [id(t) for t in example_inputs]))
        return compiled

    def learn(self, local: list[torch.Tensor]) -> None:
        """After the first call: where each of inductor's inputs sits in `local` (the chunk's
        tensors in call order: values, params, grads, then each buffer's)."""
        if len(self.captures) != 1:
            self.drop_direct()
            return
        compiled, ids = self.captures[0]
        self.captures = [(compiled, [])]
        where = {id(t): i for i, t in enumerate(local)}
        order = [where.get(i) for i in ids]
        if not order or None in order:
            self.drop_direct()
            return
        self.direct, self.order = compiled, order  # type: ignore[assignment]

    def drop_direct(self) -> None:
        self.direct, self.order = None, []


class _GroupPlan:
    """A param group's compiled plan: its chunks, its small tensors, the hyperparameter vector
    (on the CPU one tensor refilled in place each step through a numpy view, cheaper than
    building a tensor) and, per chunk, a getter that picks inductor's inputs, in its order, from
    the group's flat list [values, params, grads, each buffer's tensors]."""

    __slots__ = ("chunks", "small", "values", "view", "getters", "ptrs", "cpu")

    def __init__(
        self,
        chunks: list[tuple[_Graph, list[int]]],
        small: list[int],
        params: list[torch.Tensor],
        n_values: int,
    ) -> None:
        self.chunks, self.small = chunks, small
        self.cpu = params[0].device.type == "cpu"
        wide = any(p.dtype == torch.float64 for p in params)
        self.values = torch.zeros(n_values, dtype=torch.float64 if wide else torch.float32)
        self.view = self.values.numpy() if self.cpu else None
        self.getters: list[Callable[[list], tuple] | None] = [None] * len(chunks)
        self.ptrs = [p.data_ptr() for p in params]


def _getter(order: list[int], idx: list[int], n: int) -> Callable[[list], tuple]:
    """Positions in the group's flat list of a chunk's inputs (given by their positions in the
    chunk's own flat list: values, then blocks of len(idx) tensors) as one itemgetter."""
    k = len(idx)
    where = [0 if q == 0 else 1 + (q - 1) // k * n + idx[(q - 1) % k] for q in order]
    if len(where) == 1:
        return lambda flat: (flat[where[0]],)
    return operator.itemgetter(*where)


def _plan(
    update: Callable,
    flags: tuple,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    buffers: dict[str, list[torch.Tensor]],
) -> tuple[list[tuple[_Graph, list[int]]], list[int]]:
    """Split a param group into chunks of at most CHUNK large tensors, each run by one compiled
    function (shared by every chunk of the same layouts, in this model or another), plus the
    small tensors (under SMALL_NUMEL elements: biases, norms): in the same chunk when all fit in
    one, else one chunk of their own when there are at most SMALL_IN_GRAPH, else left to the
    multi-tensor path (see the module docstring).
    Chunks keep each graph small, as inductor's scheduler grows faster than linearly with a
    graph's size; sorting by layout first makes a deep net's repeated blocks share their chunks'
    code."""
    large, small = [], []
    for i, p in enumerate(params):
        (small if p.numel() < SMALL_NUMEL else large).append(i)
    layouts = {i: _signature(i, params, grads, buffers) for i in large}
    large.sort(key=lambda i: repr(layouts[i]))
    parts = [large[lo : lo + CHUNK] for lo in range(0, len(large), CHUNK)]
    if large and small and len(large) + len(small) <= CHUNK:  # one graph: one call per step
        layouts.update({i: _signature(i, params, grads, buffers) for i in small})
        parts = [sorted(large + small, key=lambda i: repr(layouts[i]))]
        small = []
    elif large and 0 < len(small) <= SMALL_IN_GRAPH:
        layouts.update({i: _signature(i, params, grads, buffers) for i in small})
        parts.append(sorted(small, key=lambda i: repr(layouts[i])))
        small = []
    chunks = []
    for part in parts:
        key = (update, flags, tuple(layouts[i] for i in part), torch.get_num_threads())
        graph = _cache.get(key)
        if graph is None:
            graph = _cache[key] = _Graph()
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        chunks.append((graph, part))
    return chunks, small


# Inductor's C++ backend merges the loops of same-sized tensors into one loop ("horizontal
# fusion"): 8-12 memory streams at once instead of 3-4, which the CPU's prefetchers serve worse.
# One loop per tensor measured 3% (Adam) to 8% (SGD with momentum) faster per step, single thread.
# The size/stride asserts (inductor's default) are what makes calling the graph directly safe.
_OPTIONS = {"cpp.max_horizontal_fusion_size": 1, "size_asserts": True}


def _broke(exc: Exception, memo: dict) -> None:
    """Compiling failed: warn once, stay on the multi-tensor path for the rest of the process."""
    global _broken
    _broken = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    _cache.clear()
    memo.clear()
    warnings.warn(
        f"trainlab.optim: torch.compile failed ({_broken}); using the multi-tensor "
        f"path from now on (set {ENV_VAR}=0 to skip compiling)",
        stacklevel=4,
    )


def _group_plan(
    update: Callable,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    buffers: dict[str, list[torch.Tensor]],
    h: dict[str, Any],
    memo: dict,
) -> tuple[_GroupPlan, tuple, tuple]:
    """The group's plan (kept in `memo` for these very parameters), its flags and the names of
    its float hyperparameters."""
    floats, others = [], []  # one pass over h (_hyper builds it in a fixed order)
    for k, v in h.items():
        if v.__class__ is float:
            floats.append(k)
        else:
            others.append((k, v))
    flags, names = tuple(others), tuple(floats)
    quick = (update, flags, names, tuple(map(id, params)))
    plan: _GroupPlan | None = memo.get(quick)
    if plan is not None and plan.cpu and [p.data_ptr() for p in params] != plan.ptrs:
        plan = None  # a parameter's storage was replaced (.data =): maybe a new dtype or device
    if plan is None:
        chunks, small = _plan(update, (flags, names), params, grads, buffers)
        plan = _GroupPlan(chunks, small, params, len(names))
        memo.clear()
        memo[quick] = plan
    return plan, flags, names


def _scratch(t: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor of t's layout (shape, strides, storage offset, dtype, device,
    requires_grad): what the compile ahead traces and runs on instead of the live tensor."""
    span = 1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride())) if t.numel() else 0
    base = torch.empty(t.storage_offset() + span, dtype=t.dtype, device=t.device)
    out = base.as_strided(t.shape, t.stride(), t.storage_offset())
    return out.requires_grad_(t.requires_grad)


def _compile_ahead(graph: _Graph, update: Callable, live: tuple, rest: tuple, threads: int) -> None:
    """In the background thread: compile `graph` by calling it once on scratch tensors made
    here with the layouts of the chunk's `live` tensors (read for their metadata only; made here,
    one chunk at a time, so a large model does not hold a scratch copy of every chunk at once;
    their results are thrown away), with the main thread's torch thread count (part of the cache
    key) and autograd off (thread-local: on by default in a new thread); then learn its inputs'
    order, so that the main thread calls it directly from its first compiled step."""
    torch.set_num_threads(threads)
    params, grads, buffers = live
    local = (
        [_scratch(t) for t in params],
        [_scratch(t) for t in grads],
        {name: [_scratch(t) for t in b] for name, b in buffers.items()},
    )
    values = rest[-1].clone()
    with torch.no_grad():
        graph.fn(update, *local, *rest[:-1], values)
    graph.learn([values, *local[0], *local[1], *itertools.chain.from_iterable(local[2].values())])


def _worker(jobs: queue.SimpleQueue) -> None:
    """The background thread: runs compile jobs one after the other until told to stop (None)."""
    while True:
        job = jobs.get()
        if job is None:
            return
        future, fn, args = job
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the main thread, which waits on it
                future.set_exception(exc)
        del job, future, fn, args  # the scratch tensors go now, not when the next job comes


def _drain() -> None:
    """At exit: cancel the jobs not started and let the one running finish (a compile cut off
    by the interpreter's shutdown aborted the process: "terminate called without an active
    exception"), so a process that ends inside its compile-ahead window waits for one compile."""
    global _jobs
    jobs, _jobs = _jobs, None
    if jobs is None or _thread is None:
        return
    while True:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            break
        if job is not None:
            job[0].cancel()
    jobs.put(None)
    _thread.join()


def _submit(fn: Callable[..., Any], *args: Any) -> Future:
    """Queue fn(*args) on the background thread (started on first use; joined at exit)."""
    global _jobs, _thread
    if _jobs is None:
        _jobs = queue.SimpleQueue()
        _thread = threading.Thread(
            target=_worker, args=(_jobs,), name="trainlab-compile-ahead", daemon=True
        )
        _thread.start()
        atexit.register(_drain)
    future: Future = Future()
    _jobs.put((future, fn, args))
    return future


def ahead(
    update: Callable,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    buffers: dict[str, list[torch.Tensor]],
    h: dict[str, Any],
    memo: dict,
) -> None:
    """Start compiling, in one background thread, the graphs this CPU param group will run
    from its switch step (called on its eager steps before it). Numbers do not depend on when
    it finishes: the switch step is fixed, and run() waits there for a compile not yet done.
    The compile traces and runs the update once on scratch tensors of the live ones' layouts
    (one chunk's param, grad and state memory at a time, made in the thread), never on the
    live tensors, which the main thread keeps stepping (the job keeps references to them, for
    their layouts, until it has run)."""
    if _broken is not None or memo.get(_AHEAD):
        return
    plan, flags, names = _group_plan(update, params, grads, buffers, h, memo)
    memo[_AHEAD] = True  # once per plan (a new plan clears memo): ~10 us a step saved
    if not plan.cpu:
        return
    for graph, idx in plan.chunks:
        if graph.pending is not None or graph.order is not None:
            continue
        live = (
            [params[i] for i in idx],
            [grads[i] for i in idx],
            {name: [b[i] for i in idx] for name, b in buffers.items()},
        )
        graph.pending = _submit(
            _compile_ahead,
            graph,
            update,
            live,
            (flags, names, plan.values),
            torch.get_num_threads(),
        )


def run(
    update: Callable,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    buffers: dict[str, list[torch.Tensor]],
    h: dict[str, Any],
    memo: dict,
) -> list[int]:
    """Apply `update` to the param group's large tensors by compiled calls, one per chunk.
    Returns the indices of the tensors left for the caller's multi-tensor path: the small ones,
    or all that remain once compiling turns out to be impossible (a graph that failed to compile
    never ran, so those tensors are untouched). `memo` is the caller's own dict (one per param
    group): it keeps the plan for these very parameters, so a step does not rebuild keys from
    every tensor's metadata."""
    if _broken is not None:
        return list(range(len(params)))
    plan, flags, names = _group_plan(update, params, grads, buffers, h, memo)
    if plan.cpu:
        plan.view[:] = [h[name] for name in names]  # type: ignore[index]
        values: Any = plan.values
        flat = [values, *params, *grads, *itertools.chain.from_iterable(buffers.values())]
    else:  # a 0-d CPU tensor enters a CUDA kernel as a scalar argument; a slice of one cannot
        values = tuple(torch.tensor(h[name], dtype=torch.float64) for name in names)
    for k, (graph, idx) in enumerate(plan.chunks):
        getter = plan.getters[k]
        if getter is None and graph.pending is not None:  # compiled ahead: wait for it
            try:
                graph.pending.result()
            except Exception as exc:  # as if it had failed here
                graph.pending = None
                _broke(exc, memo)
                return plan.small + [i for _, rest in plan.chunks[k:] for i in rest]
            graph.pending = None
        if getter is None and graph.direct is not None and plan.cpu:
            getter = plan.getters[k] = _getter(graph.order, idx, len(params))  # type: ignore[arg-type]
        if getter is not None:
            try:
                graph.direct(*getter(flat))  # type: ignore[misc]
                continue
            except AssertionError:  # inductor's size/stride asserts: nothing ran; ask dynamo
                graph.drop_direct()
                plan.getters = [None] * len(plan.chunks)
        local = (
            [params[i] for i in idx],
            [grads[i] for i in idx],
            {name: [b[i] for i in idx] for name, b in buffers.items()},
        )
        try:
            graph.fn(update, *local, flags, names, values)
        except Exception as exc:  # no C++ compiler, an unsupported op...
            _broke(exc, memo)
            return plan.small + [i for _, rest in plan.chunks[k:] for i in rest]
        if not plan.cpu:
            continue
        if graph.order is None:
            graph.learn(
                [values, *local[0], *local[1], *itertools.chain.from_iterable(local[2].values())]
            )
        if graph.direct is not None:
            plan.getters[k] = _getter(graph.order, idx, len(params))  # type: ignore[arg-type]
    return plan.small
