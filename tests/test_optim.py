"""trainlab.optim's first-order optimizers against torch.optim: the same numbers for the same
arguments (100 steps, several shapes and param groups, every option), state_dicts that move both
ways, torch's LR schedulers, the compiled path, diagnostics, the registry and bad input."""

from __future__ import annotations

import inspect
import io
import math
import os
import subprocess
import sys
import time

import pytest
import torch

import trainlab.optim as to
from trainlab.config import ModelConfig, validate
from trainlab.errors import UserError
from trainlab.nn.models import build_model
from trainlab.optim import compiled

SHAPES = [(7, 5), (5,), (3, 4, 2), (1,)]

# (class name, kwargs): every option the issue lists, for each optimizer
CASES = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "weight_decay": 0.1, "maximize": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.99, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "maximize": True}),
    ("Adagrad", {}),
    (
        "Adagrad",
        {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.1},
    ),
    ("Adagrad", {"lr": 0.1, "eps": 1e-6, "maximize": True}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    (
        "RMSprop",
        {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.01, "maximize": True},
    ),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "betas": (0.5, 0.9), "weight_decay": 0.0, "maximize": True}),
]


def case_id(case: tuple[str, dict]) -> str:
    name, kw = case
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


pytestmark = pytest.mark.usefixtures("multi_tensor_one_thread")


def make_params(seed: int = 0, device: str = "cpu") -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen).to(device).requires_grad_() for s in SHAPES]


def groups(params: list[torch.Tensor], lr: float) -> list[dict]:
    """Two param groups; the second overrides lr (and weight decay, where there is one)."""
    return [{"params": params[:2]}, {"params": params[2:], "lr": lr * 0.5}]


def set_grads(params: list[torch.Tensor], gen: torch.Generator) -> None:
    """A random problem: the gradient of 0.5 * |p - target|^2 plus noise."""
    for p in params:
        p.grad = p.detach() * 0.5 + torch.randn(p.shape, generator=gen).to(p.device)


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    scale = ref.abs().max().item()
    return (ours - ref).abs().max().item() / (scale if scale > 0 else 1.0)


def run_pair(
    name: str,
    kwargs: dict,
    steps: int,
    foreach: bool | None,
    torch_foreach: bool = False,
    device: str = "cpu",
) -> tuple[list, list, torch.optim.Optimizer, torch.optim.Optimizer]:
    lr = kwargs.get("lr", 0.01)
    ref_params, our_params = make_params(device=device), make_params(device=device)
    ref = getattr(torch.optim, name)(groups(ref_params, lr), foreach=torch_foreach, **kwargs)
    ours = getattr(to, name)(groups(our_params, lr), foreach=foreach, **kwargs)
    gen_ref, gen_ours = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for _ in range(steps):
        set_grads(ref_params, gen_ref)
        ref.step()
        set_grads(our_params, gen_ours)
        ours.step()
    return ref_params, our_params, ref, ours


def assert_same_state(
    ref: torch.optim.Optimizer, ours: torch.optim.Optimizer, tol: float = 1e-5
) -> None:
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert ref_sd["state"].keys() == our_sd["state"].keys()
    for i, ref_state in ref_sd["state"].items():
        our_state = our_sd["state"][i]
        assert ref_state.keys() == our_state.keys()
        for key, value in ref_state.items():
            assert our_state[key].dtype == value.dtype, key
            assert rel_err(our_state[key], value) <= tol, key


@pytest.mark.parametrize("foreach", [False, None], ids=["for-loop", "multi-tensor"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_torch_for_100_steps(case: tuple[str, dict], foreach: bool | None) -> None:
    name, kwargs = case
    ref_params, our_params, ref, ours = run_pair(name, kwargs, 100, foreach)
    for r, o in zip(ref_params, our_params):
        assert rel_err(o.detach(), r.detach()) <= 1e-5
    assert_same_state(ref, ours)
    assert ours.execution_path == ("for-loop" if foreach is False else "foreach")


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "LBFGS"])
def test_constructor_is_torchs(name: str) -> None:
    """Drop-in: the same argument names, order, kinds (positional / keyword-only) and defaults."""

    def signature(cls: type) -> list[tuple]:
        return [
            (p.name, p.kind, p.default) for p in inspect.signature(cls.__init__).parameters.values()
        ]

    assert signature(getattr(to, name)) == signature(getattr(torch.optim, name))


def test_state_keys_and_step_type_are_torchs() -> None:
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.ones(3)
    for name, kw, keys in [
        ("SGD", {}, set()),
        ("SGD", {"momentum": 0.9}, {"momentum_buffer"}),
        ("Adagrad", {}, {"step", "sum"}),
        (
            "RMSprop",
            {"momentum": 0.9, "centered": True},
            {"step", "square_avg", "momentum_buffer", "grad_avg"},
        ),
        ("Adam", {"amsgrad": True}, {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}),
        ("AdamW", {}, {"step", "exp_avg", "exp_avg_sq"}),
    ]:
        opt = getattr(to, name)([p], **kw)
        opt.step()
        state = opt.state_dict()["state"].get(0, {})
        assert set(state) == keys, name
        if "step" in state:
            assert state["step"].dtype == torch.float32 and state["step"].dim() == 0
            assert state["step"].item() == 1.0
        assert (
            opt.state_dict()["param_groups"][0].keys()
            == getattr(torch.optim, name)([p], **kw).state_dict()["param_groups"][0].keys()
        )


ROUND_TRIP = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01}),
]


@pytest.mark.parametrize("direction", ["torch->ours", "ours->torch"])
@pytest.mark.parametrize("case", ROUND_TRIP, ids=case_id)
def test_state_dict_moves_between_torch_and_ours(case: tuple[str, dict], direction: str) -> None:
    name, kwargs = case
    lr = kwargs["lr"]
    first_cls, second_cls = getattr(torch.optim, name), getattr(to, name)
    if direction == "ours->torch":
        first_cls, second_cls = second_cls, first_cls
    # run 10 steps with the first, save; continue 10 steps with the first and with a fresh second
    params = make_params()
    first = first_cls(groups(params, lr), **kwargs)
    gen = torch.Generator().manual_seed(3)
    for _ in range(10):
        set_grads(params, gen)
        first.step()
    buffer = io.BytesIO()  # a checkpoint on disk: torch.save, then torch.load(weights_only=True)
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    twins = [p.detach().clone().requires_grad_() for p in params]
    second = second_cls(groups(twins, lr), **kwargs)
    second.load_state_dict(saved)
    gen_a, gen_b = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    for _ in range(10):
        set_grads(params, gen_a)
        first.step()
        set_grads(twins, gen_b)
        second.step()
    for a, b in zip(params, twins):
        assert rel_err(b.detach(), a.detach()) <= 1e-5
    ref, ours = (first, second) if direction == "torch->ours" else (second, first)
    assert_same_state(ref, ours)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_torch_lr_schedulers_drive_ours(name: str) -> None:
    """OneCycleLR changes lr every step (and momentum / beta1 with cycle_momentum), chained
    after a warm-up; ours follows exactly what torch.optim does under the same schedule."""
    kwargs = {"lr": 0.05, "momentum": 0.9} if name == "SGD" else {"lr": 0.01}
    runs = []
    for module in (torch.optim, to):
        params = make_params()
        opt = getattr(module, name)(params, **kwargs)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=30)
        gen, lrs = torch.Generator().manual_seed(5), []
        for _ in range(30):
            set_grads(params, gen)
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        runs.append((params, lrs))
    (ref_params, ref_lrs), (our_params, our_lrs) = runs
    assert our_lrs == ref_lrs and len(set(our_lrs)) > 20
    for r, o in zip(ref_params, our_params):
        assert rel_err(o.detach(), r.detach()) <= 1e-5


def test_step_lr_schedule_and_tensor_lr() -> None:
    params = make_params()
    opt = to.Adam(params, lr=torch.tensor(0.01))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    gen = torch.Generator().manual_seed(6)
    for _ in range(4):
        set_grads(params, gen)
        opt.step()
        sched.step()
    assert math.isclose(float(opt.param_groups[0]["lr"]), 1e-4, rel_tol=1e-6)


def test_maximize_climbs() -> None:
    """maximize=True ascends f(x) = -|x - 3|^2: x goes to 3."""
    x = torch.zeros(4, requires_grad=True)
    opt = to.Adam([x], lr=0.1, maximize=True)
    for _ in range(300):
        opt.zero_grad()
        (-(x - 3).pow(2).sum()).backward()
        opt.step()
    assert torch.allclose(x.detach(), torch.full((4,), 3.0), atol=1e-2)


def test_params_without_grad_or_skipping_steps() -> None:
    """Parameters with no gradient are left alone and their step does not advance; a parameter
    that skipped steps gets its own bias correction, as in torch."""
    for module in (torch.optim, to):
        params = make_params()
        opt = module.Adam(params, lr=0.01)
        gen = torch.Generator().manual_seed(7)
        for i in range(6):
            set_grads(params, gen)
            if i < 3:
                params[0].grad = None
            opt.step()
        if module is torch.optim:
            ref = [p.detach().clone() for p in params]
            ref_steps = [opt.state[p]["step"].item() for p in params]
    assert [opt.state[p]["step"].item() for p in params] == ref_steps == [3.0, 6.0, 6.0, 6.0]
    for r, o in zip(ref, params):
        assert rel_err(o.detach(), r) <= 1e-5


def test_cached_step_plan_follows_every_change() -> None:
    """After its first step a param group runs on a cached plan (its parameters, the state's
    buffers, a step count kept in Python). Each change it assumed away sends the step back to
    the full path, so ours stays equal to torch step by step: a parameter losing and regaining
    its gradient, a state_dict round trip, weight decay switched on, a new param group, the
    state cleared, the learning rate changed by a scheduler. `step` stays a 0-d float32 tensor."""
    runs = []
    for module in (torch.optim, to):
        params = make_params()
        extra = torch.randn(3, generator=torch.Generator().manual_seed(2)).requires_grad_()
        opt = module.Adam(groups(params, 0.01), lr=0.01, foreach=False)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)
        gen = torch.Generator().manual_seed(11)
        trace = []
        for i in range(16):
            set_grads(params, gen)
            extra.grad = torch.randn(3, generator=gen)
            if i in (3, 4):
                params[1].grad = None
            if i == 6:
                opt.load_state_dict(opt.state_dict())
            if i == 8:
                opt.param_groups[0]["weight_decay"] = 0.1
            if i == 10:
                opt.add_param_group({"params": [extra]})
            if i == 13:
                opt.state.clear()
            opt.step()
            sched.step()
            trace.append([p.detach().clone() for p in [*params, extra]])
        runs.append((trace, opt, params))
    (ref_trace, ref, ref_params), (our_trace, ours, our_params) = runs
    for step, (r_all, o_all) in enumerate(zip(ref_trace, our_trace)):
        for r, o in zip(r_all, o_all):
            assert rel_err(o, r) <= 1e-5, step
    assert_same_state(ref, ours)
    assert all(
        ours.state[p]["step"].dtype == torch.float32 and ours.state[p]["step"].dim() == 0
        for p in our_params
    )


def test_complex_params_match_torch() -> None:
    gen = torch.Generator().manual_seed(8)
    start = torch.randn(6, dtype=torch.complex64, generator=gen)
    grads = [torch.randn(6, dtype=torch.complex64, generator=gen) for _ in range(20)]
    results = []
    for module in (torch.optim, to):
        p = start.clone().requires_grad_()
        opt = module.RMSprop([p], lr=0.01, momentum=0.9, centered=True, foreach=False)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        results.append(p.detach())
    assert rel_err(torch.view_as_real(results[1]), torch.view_as_real(results[0])) <= 1e-5


def test_compiled_path_matches_torch_without_recompiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """TRAINLAB_COMPILE=1: one fused pass per tensor. The learning rate changes every step (a
    scheduler) and the result still equals torch's; lr is a tensor input, not a constant. After
    the first step the compiled graphs are called directly (no dynamo guards); a gradient with a
    new layout (transposed) trips inductor's size/stride asserts before anything runs, and that
    step goes back through dynamo (which recompiles it) and still equals torch's."""
    monkeypatch.setenv(compiled.ENV_VAR, "1")
    monkeypatch.setattr(compiled, "SMALL_NUMEL", 0)  # compile even these small tensors
    if not compiled.available():
        pytest.skip("torch.compile failed earlier in this process")
    from torch._dynamo.utils import counters

    kwargs = {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}
    graphs_before = counters["stats"]["unique_graphs"]
    runs = []
    for module in (torch.optim, to):
        params = make_params()
        opt = module.AdamW(groups(params, 0.01), **kwargs)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
        gen = torch.Generator().manual_seed(9)
        for i in range(13):
            set_grads(params, gen)
            if i == 12:
                params[0].grad = params[0].grad.t().contiguous().t()  # same values, new strides
            opt.step()
            sched.step()
            if i == 10 and module is to:
                direct = [
                    g.direct is not None
                    for memo in opt._memo.values()
                    for plan in memo.values()
                    for g, _ in plan.chunks
                ]
        runs.append((params, opt))
    (ref_params, ref), (our_params, ours) = runs
    if not compiled.available():
        pytest.skip("torch.compile does not work here (no C++ compiler?)")
    assert ours.execution_path == "compiled"
    assert direct == [True, True]
    assert len(ours._memo[0]) == len(ours._memo[1]) == 1
    for r, o in zip(ref_params, our_params):
        assert rel_err(o.detach(), r.detach()) <= 1e-5
    assert_same_state(ref, ours)
    assert counters["stats"]["unique_graphs"] - graphs_before == 3  # one per group, 1 recompile


def test_compiling_ahead_waits_and_gives_the_same_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiled from step 4 (TRAINLAB_COMPILE=4): the graph compiles in the background from the
    first step while steps 1-3 run on the multi-tensor path. Run once as it comes and once with
    the compile held back 1.5 s (not done at the switch, so step 4 waits for it): bitwise the
    same parameters and paths, and each run compiled its graph once, in the background (the main
    thread calls it directly: no dynamo, no recompile)."""
    monkeypatch.setenv(compiled.ENV_VAR, "4")
    if not compiled.available():
        pytest.skip("torch.compile failed earlier in this process")
    from torch._dynamo.utils import counters

    real = compiled._compile_ahead
    runs = []
    for delay in (0.0, 1.5):
        monkeypatch.setattr(compiled, "_cache", type(compiled._cache)())  # a fresh compile

        def slow(*args: object, delay: float = delay) -> None:
            time.sleep(delay)
            real(*args)

        monkeypatch.setattr(compiled, "_compile_ahead", slow)
        gen = torch.Generator().manual_seed(5)
        shapes = [(compiled.COMPILE_MIN_NUMEL // 64, 64), (3, compiled.COMPILE_MIN_NUMEL // 2)]
        params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
        opt = to.RMSprop(params, lr=0.01, momentum=0.9)
        graphs_before, taken, pending_at_switch = counters["stats"]["unique_graphs"], [], None
        for step in range(1, 7):
            set_grads(params, gen)
            if step == 4:
                pending_at_switch = [
                    g.pending is not None and not g.pending.done()
                    for memo in opt._memo.values()
                    for plan in memo.values()
                    if isinstance(plan, compiled._GroupPlan)
                    for g, _ in plan.chunks
                ]
            opt.step()
            taken.append(opt.execution_path)
        if not compiled.available():
            pytest.skip("torch.compile does not work here (no C++ compiler?)")
        assert counters["stats"]["unique_graphs"] - graphs_before == 1
        runs.append((taken, [p.detach().clone() for p in params], pending_at_switch))
    (fast_paths, fast, _), (slow_paths, slow_params, held) = runs
    assert fast_paths == slow_paths == ["foreach"] * 3 + ["compiled"] * 3
    assert held == [True]  # the held-back compile was still running at the switch step
    for a, b in zip(fast, slow_params):
        assert torch.equal(a, b)


def test_a_run_that_ends_before_the_switch_never_compiles_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The trainer tells the optimizer its last step: a run that ends before the switch step
    (50 here) starts no compile it would not use; one whose end is unknown or past the switch
    compiles ahead from its first step."""
    monkeypatch.setenv(compiled.ENV_VAR, "50")
    started: list[int] = []
    monkeypatch.setattr(compiled, "ahead", lambda *args: started.append(1))
    for last_step, expected in ((10, 0), (None, 3), (50, 3)):
        started.clear()
        p = torch.zeros(compiled.COMPILE_MIN_NUMEL, requires_grad=True)
        opt = to.RMSprop([p], lr=0.01, momentum=0.9)
        opt.last_step = last_step
        for _ in range(3):
            p.grad = torch.ones_like(p)
            opt.step()
        assert opt.execution_path == "foreach" and len(started) == expected, last_step


def test_the_trainer_tells_the_optimizer_its_last_step(tmp_path) -> None:
    """trainlab train sets last_step to epochs x optimizer steps per epoch."""
    from trainlab.config import validate
    from trainlab.engine.trainer import Trainer
    from trainlab.rundir import RunDir

    cfg = validate(
        {
            "data": {"name": "spirals"},
            "model": {"kind": "mlp", "width": 8, "depth": 1},
            "train": {"epochs": 3, "batch_size": 64},
        }
    )
    trainer = Trainer(cfg, RunDir(tmp_path))
    assert trainer.optimizer.last_step == 3 * trainer.steps_per_epoch > 3


def test_a_process_ending_while_compiling_ahead_exits_cleanly() -> None:
    """A run that stops inside its compile-ahead window (3 steps of 50 here) ends with status 0:
    the compile still running is let finish at exit (cut off by the interpreter's shutdown, it
    aborted the process)."""
    code = (
        "import torch, trainlab.optim as to\n"
        "p = torch.zeros(1 << 14, requires_grad=True)\n"
        "opt = to.RMSprop([p], lr=0.01, momentum=0.9)\n"
        "for _ in range(3):\n"
        "    p.grad = torch.ones_like(p)\n"
        "    opt.step()\n"
        "print(opt.execution_path)\n"
    )
    env = {**os.environ, compiled.ENV_VAR: "50"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["foreach"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", ["0", "1"], ids=["multi-tensor", "compiled"])
def test_cuda_matches_torch(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv(compiled.ENV_VAR, mode)
    monkeypatch.setattr(compiled, "SMALL_NUMEL", 0)
    # Triton's fused kernels contract a * b + c into FMAs: on a centered RMSprop (a difference of
    # squares under the root) that moves the last float32 bits a little more than on the CPU
    tol = 1e-5 if mode == "0" else 5e-5
    for name, kwargs in CASES:
        ref_params, our_params, ref, ours = run_pair(name, kwargs, 30, None, device="cuda")
        for r, o in zip(ref_params, our_params):
            assert rel_err(o.detach(), r.detach()) <= tol, (name, kwargs)
        assert_same_state(ref, ours, tol)
        if mode == "1" and ours.execution_path != "compiled":
            assert name == "SGD" and not kwargs.get("momentum") and not kwargs.get("maximize")


def test_compiled_plan_takes_few_small_tensors_along() -> None:
    """Large tensors go in chunks of at most CHUNK; a group's small tensors (biases) join them
    when all fit in one chunk, else get a chunk of their own when there are at most SMALL_IN_GRAPH
    of them (a multi-tensor op on the CPU is a loop of per-tensor ops), else they stay on the
    multi-tensor path; the ski-rental rule prices
    in every tensor it will compile. Planning builds no graph: this test compiles nothing."""

    def plan(n_large: int, n_small: int) -> tuple[list[list[int]], list[int], list]:
        params = [torch.zeros(compiled.SMALL_NUMEL + i) for i in range(n_large)] + [
            torch.zeros(7 + i) for i in range(n_small)
        ]
        grads = [torch.zeros_like(p) for p in params]
        chunks, small = compiled._plan(
            to.Adam._update,
            ((), ()),
            params,
            grads,
            {"exp_avg": [torch.zeros_like(p) for p in params]},
        )
        return [sorted(idx) for _, idx in chunks], small, params

    chunks, small, _ = plan(3, 2)
    assert chunks == [[0, 1, 2, 3, 4]] and small == []  # all fit in one chunk: one call
    chunks, small, _ = plan(compiled.CHUNK - 1, 2)
    assert [len(c) for c in chunks] == [compiled.CHUNK - 1, 2] and small == []
    many = compiled.SMALL_IN_GRAPH + 1
    chunks, small, params = plan(compiled.CHUNK + 1, many)
    assert [len(c) for c in chunks] == [compiled.CHUNK, 1]
    assert sorted(small) == list(range(compiled.CHUNK + 1, compiled.CHUNK + 1 + many))
    assert plan(0, 3)[:2] == ([], [0, 1, 2])  # nothing large: nothing worth a graph
    # the modelled compile cost: SECONDS_PER_TENSOR per compiled tensor, small ones included
    few = [torch.zeros(compiled.COMPILE_MIN_NUMEL)] * 3 + [torch.zeros(5)] * 8
    cost = compiled.SECONDS_PER_TENSOR * 11
    eager = 1e-9 * compiled.EAGER_NS_PER_ELEMENT * (3 * compiled.COMPILE_MIN_NUMEL + 40)
    eager += 1e-6 * compiled.EAGER_US_PER_TENSOR * 11
    assert compiled.compile_from(few) == math.ceil(cost / eager)
    assert compiled.compile_from([torch.zeros(compiled.COMPILE_MIN_NUMEL - 1)]) is None


def test_compile_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default small models never compile; TRAINLAB_COMPILE=0 wins even over fused=True;
    foreach=False is the for-loop; plain SGD stays one multi-tensor add_."""
    monkeypatch.setenv(compiled.ENV_VAR, "auto")
    params = make_params()
    gen = torch.Generator().manual_seed(10)
    for opt, path in [
        (to.Adam(params), "foreach"),
        (to.SGD(params, lr=0.1), "foreach"),
        (to.RMSprop(params, foreach=False), "for-loop"),
    ]:
        set_grads(params, gen)
        opt.step()
        assert opt.execution_path == path
    monkeypatch.setenv(compiled.ENV_VAR, "0")
    opt = to.Adam(params, fused=True)
    opt.step()
    assert opt.execution_path == "foreach"
    monkeypatch.setenv(compiled.ENV_VAR, "sometimes")  # read when a group's step plan is made
    with pytest.raises(UserError, match="TRAINLAB_COMPILE"):
        to.Adam(params).step()


# ---- diagnostics ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_diagnostics_update_ratio_is_the_real_one(case: tuple[str, dict]) -> None:
    """update_ratio = |x_after - x_before| / |x_after|, per parameter and per group, recomputed
    from the state without touching the step (with weight decay too: the dx of the step is
    recovered from the moved weights)."""
    name, kwargs = case
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    named = list(model.named_parameters())
    opt = getattr(to, name)([{"params": named[:2]}, {"params": named[2:], "lr": 0.02}], **kwargs)
    gen = torch.Generator().manual_seed(11)
    params = [p for _, p in named]
    for _ in range(5):
        set_grads(params, gen)
        before = [p.detach().clone() for p in params]
        opt.step()
    diag = opt.diagnostics()
    assert set(diag["params"]) == {n for n, _ in named}
    for (n, p), b in zip(named, before):
        real = ((p.detach() - b).norm() / p.detach().norm()).item()
        assert diag["params"][n]["update_ratio"] == pytest.approx(real, rel=1e-4)
    for gi, (lo, hi) in enumerate([(0, 2), (2, 4)]):
        upd = math.sqrt(
            sum(((params[i].detach() - before[i]) ** 2).sum().item() for i in range(lo, hi))
        )
        norm = math.sqrt(sum((params[i].detach() ** 2).sum().item() for i in range(lo, hi)))
        group = diag["groups"][gi]
        assert group["update_ratio"] == pytest.approx(upd / norm, rel=1e-4)
        assert group["lr"] == opt.param_groups[gi]["lr"]
    first = diag["params"][named[0][0]]
    assert all(isinstance(v, float) for v in first.values())
    if kwargs.get("momentum"):
        assert first["velocity_norm"] > 0
    if name in ("Adam", "AdamW"):
        assert first["first_moment_norm"] > 0 and first["effective_lr"] > 0
    if name in ("Adagrad", "RMSprop"):
        assert first["effective_lr"] > 0


def test_diagnostics_without_gradient_and_before_any_step() -> None:
    params = make_params()
    opt = to.SGD(params, lr=0.1)
    assert opt.diagnostics() == {"params": {}, "groups": [{"update_ratio": None, "lr": 0.1}]}
    set_grads(params, torch.Generator().manual_seed(12))
    opt.step()
    assert opt.diagnostics()["groups"][0]["update_ratio"] > 0
    opt.zero_grad()
    diag = opt.diagnostics()
    assert diag["groups"][0]["update_ratio"] is None
    assert set(diag["params"]) == {"0.0", "0.1", "0.2", "0.3"}


# ---- registry and bad input ----------------------------------------------------------------------
def test_create_by_name() -> None:
    p = [torch.zeros(2, requires_grad=True)]
    assert isinstance(to.create("adam", p, lr=0.1), to.Adam)
    momentum = to.create("momentum", p)
    assert isinstance(momentum, to.SGD) and momentum.defaults["momentum"] == 0.9
    nesterov = to.create("Nesterov", p, momentum=0.99)
    assert nesterov.defaults["nesterov"] and nesterov.defaults["momentum"] == 0.99
    assert isinstance(to.create("adamw", p), to.AdamW)
    assert isinstance(to.create("lbfgs", p), to.LBFGS)
    assert isinstance(to.create("newton", p), to.Newton)
    assert to.FULL_BATCH == {"lbfgs", "newton"}
    assert set(to.NAMES) == {
        "sgd",
        "momentum",
        "nesterov",
        "adagrad",
        "rmsprop",
        "adam",
        "adamw",
        "lbfgs",
        "newton",
    }
    with pytest.raises(UserError, match="optim.name: unknown optimizer 'adamax'.*sgd, momentum"):
        to.create("adamax", p)
    with pytest.raises(UserError, match="optim.momentum: not an argument of adam"):
        to.create("adam", p, momentum=0.9)


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda p: to.SGD(p, lr=-1),
            r"^lr: Invalid learning rate: -1; must be a finite number >= 0$",
        ),
        (lambda p: to.Adam(p, lr=float("nan")), r"^lr: Invalid learning rate: nan; must be a fin"),
        (lambda p: to.Adam(p, lr=float("inf")), r"^lr: Invalid learning rate: inf"),
        (
            lambda p: to.Adam(p, betas=(1.0, 0.999)),
            r"^betas.0: Invalid beta parameter at index 0: 1.0; must be .* in \[0, 1\)$",
        ),
        (lambda p: to.AdamW(p, betas=(0.9, -0.1)), r"^betas.1: Invalid beta parameter at index 1"),
        (
            lambda p: to.Adam(p, eps=0),
            r"^eps: Invalid epsilon value: 0; must be a finite number > 0",
        ),
        (lambda p: to.RMSprop(p, eps=-1e-8), r"^eps: Invalid epsilon value: -1e-08"),
        (lambda p: to.Adagrad(p, eps=0.0), r"^eps: Invalid epsilon value: 0.0"),
        (lambda p: to.RMSprop(p, alpha=1.5), r"^alpha: Invalid alpha value: 1.5; .* in \[0, 1\]"),
        (lambda p: to.SGD(p, momentum=-0.1), r"^momentum: Invalid momentum value: -0.1"),
        (
            lambda p: to.SGD(p, nesterov=True),
            r"^nesterov: Nesterov momentum requires a momentum and zero dampening",
        ),
        (lambda p: to.Adam(p, weight_decay=-1), r"^weight_decay: Invalid weight_decay value: -1"),
        (lambda p: to.Adagrad(p, lr_decay=-1), r"^lr_decay: Invalid lr_decay value: -1"),
        (lambda p: to.Adam([{"params": p, "lr": -2}]), r"^param_groups\[0\].lr: Invalid learn"),
        (lambda p: to.Adam(p, lr=torch.tensor([0.1, 0.2])), r"^lr: Tensor lr must be 1-element"),
        (lambda p: to.Adam(p, lr=torch.tensor(0.1), foreach=True), r"lr as a Tensor is not sup"),
        (lambda p: to.Adam(p, betas=(0.9, torch.tensor(0.99))), r"betas must be either both"),
        (lambda p: to.Adam(p, capturable=True), r"^capturable: "),
        (lambda p: to.LBFGS(p, line_search_fn="wolfe"), r"line_search_fn"),
        (lambda p: to.Newton(p, damping=-1), r"damping"),
    ],
)
def test_bad_input_is_a_user_error(build, message: str) -> None:  # noqa: ANN001
    """From Python a bad argument is a ValueError (as torch.optim's) naming the argument, not a
    config path, with torch.optim's own words (its tests match them)."""
    with pytest.raises(ValueError, match=message) as info:
        build([torch.zeros(2, requires_grad=True)])
    assert isinstance(info.value, UserError)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fused": True, "foreach": True}, "`fused` and `foreach` cannot be `True` together"),
        ({"fused": True, "differentiable": True}, "`fused` does not support `differentiable`"),
    ],
)
def test_flag_clashes_are_runtime_errors_as_in_torch(kwargs: dict, message: str) -> None:
    for cls in (torch.optim.Adam, to.Adam):
        with pytest.raises(RuntimeError, match=message):
            cls([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_bad_arguments_are_checked_before_params(name: str) -> None:
    """params=None with a bad lr: torch says ValueError about the lr (arguments first), then a
    TypeError about params, and so do we."""
    for module in (torch.optim, to):
        with pytest.raises(ValueError, match="Invalid learning rate: -1"):
            getattr(module, name)(None, lr=-1)
        with pytest.raises(TypeError):
            getattr(module, name)(None)


def test_config_layer_names_the_config_path() -> None:
    """registry.create (what the config uses) puts `optim.` in front of the argument."""
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(UserError, match=r"^optim.lr: Invalid learning rate: -1"):
        to.create("adam", p, lr=-1)
    with pytest.raises(UserError, match=r"^optim.param_groups\[0\].momentum: Invalid momentum"):
        to.create("momentum", [{"params": p, "momentum": -1}])


def test_config_defaults_are_the_registrys() -> None:
    """One source of truth: every optimizer name has a config schema, and each schema's default
    is the class's (torch's) default with the lecture's settings on top (registry.defaults)."""
    for name in to.NAMES:
        optim = validate({"optim": {"name": name}}).optim
        want = to.registry.defaults(name)
        for key, value in optim.kwargs().items():
            assert value == pytest.approx(want[key]), (name, key)
    assert (
        to.registry.defaults("rmsprop")["lr"]
        == 1e-3
        != inspect.signature(to.RMSprop).parameters["lr"].default
    )
    assert to.registry.defaults("momentum")["momentum"] == 0.9


def test_compile_from_the_documented_steps() -> None:
    """The switch steps docs/optimizers.md quotes: 13.6M parameters in 7 tensors (the bench's
    model) from step 170; 53K parameters in 11 tensors (the MNIST-1D CNN) from step 13,427."""
    big = [(2048, 2048), (2048,), (2048, 2048), (2048,), (2048, 2048), (1024, 1024), (1024,)]
    assert compiled.compile_from([torch.empty(s) for s in big]) == 170
    cfg = ModelConfig(kind="cnn", width=32, depth=3, kernel_size=5, norm="batch")
    assert compiled.compile_from(list(build_model(cfg, (1, 40), 10).parameters())) == 13427
    assert compiled.compile_from([torch.empty(2048, 2048, device="meta")]) is None  # not CPU
