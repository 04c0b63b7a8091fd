"""L-BFGS is drop-in for torch.optim.LBFGS: the same state (keys and types), a state_dict that
moves both ways and keeps stepping the same, bitwise the same steps, complex parameters, any
tolerance torch takes, and torch's exception types and words for bad arguments."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import trainlab.optim as to
from trainlab.errors import UserError

GEN = torch.Generator().manual_seed(0)
A = torch.randn(60, 20, generator=GEN)
B = torch.randn(60, generator=GEN)
SETTINGS = [  # few iterations per step(), so that the history matters in every step checked
    {"max_iter": 4},
    {"line_search_fn": "strong_wolfe", "max_iter": 4},
    {"lr": 0.1, "max_iter": 3, "history_size": 2},
    {"line_search_fn": "strong_wolfe", "max_iter": 4, "history_size": 3},
]


def problem(cls: type, **kwargs):  # noqa: ANN201
    """A smooth non-quadratic least-squares problem: params, optimizer, closure."""
    w = torch.zeros(20, requires_grad=True)
    c = torch.zeros(1, requires_grad=True)
    opt = cls([w, c], **kwargs)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = ((A @ w + c - B) ** 2).mean() + 0.1 * (w**4).sum()
        loss.backward()
        return loss

    return [w, c], opt, closure


def assert_same(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> None:
    for o, t in zip(ours, theirs, strict=True):
        assert torch.equal(o, t), (o - t).abs().max()


@pytest.mark.parametrize("kwargs", SETTINGS, ids=str)
def test_steps_and_state_are_torchs(kwargs: dict) -> None:
    """Bitwise the same parameters after every step(), and the same state keys and value types
    (lists of tensors, 0-d tensors, ints, floats) as torch.optim.LBFGS."""
    theirs, ref, ref_closure = problem(torch.optim.LBFGS, **kwargs)
    ours, opt, closure = problem(to.LBFGS, **kwargs)
    for _ in range(4):
        assert opt.step(closure).item() == ref.step(ref_closure).item()
        assert_same(ours, theirs)
    ref_state, our_state = ref.state_dict()["state"][0], opt.state_dict()["state"][0]
    assert list(our_state) == list(ref_state)
    for key, value in ref_state.items():
        assert type(our_state[key]) is type(value), key
        if isinstance(value, list):
            assert [type(v) for v in our_state[key]] == [type(v) for v in value], key
    assert len(our_state["old_dirs"]) == len(ref_state["old_dirs"]) > 0


@pytest.mark.parametrize("kwargs", SETTINGS, ids=str)
@pytest.mark.parametrize("source, target", [("ours", "torch"), ("torch", "ours")])
def test_state_dict_moves_both_ways(kwargs: dict, source: str, target: str) -> None:
    """A state saved by one class and loaded by the other keeps the history (old_dirs, old_stps,
    ro, H_diag) and the next steps are the ones the first optimizer takes."""
    classes = {"ours": to.LBFGS, "torch": torch.optim.LBFGS}
    params, opt, closure = problem(classes[source], **kwargs)
    for _ in range(3):
        opt.step(closure)
    params2, opt2, closure2 = problem(classes[target], **kwargs)
    with torch.no_grad():
        for p2, p in zip(params2, params):
            p2.copy_(p)
    saved = copy.deepcopy(opt.state_dict())
    opt2.load_state_dict(saved)
    state = opt2.state[params2[0]]
    assert len(state["old_dirs"]) == len(saved["state"][0]["old_dirs"]) > 0
    assert state["n_iter"] == saved["state"][0]["n_iter"]
    for _ in range(3):
        opt.step(closure)
        opt2.step(closure2)
        assert_same(params2, params)


def test_earlier_trainlab_checkpoints_still_load() -> None:
    """A state saved by trainlab before it took torch's layout (s_history, y_history,
    rho_history as floats, gamma) resumes with the same steps."""
    params, opt, closure = problem(to.LBFGS, max_iter=4)
    for _ in range(3):
        opt.step(closure)
    saved = copy.deepcopy(opt.state_dict())
    state = saved["state"][0]
    state["s_history"], state["y_history"] = state.pop("old_stps"), state.pop("old_dirs")
    state["rho_history"] = [float(r) for r in state.pop("ro")]
    state["gamma"] = float(state.pop("H_diag"))
    del state["al"]
    params2, opt2, closure2 = problem(to.LBFGS, max_iter=4)
    with torch.no_grad():
        for p2, p in zip(params2, params):
            p2.copy_(p)
    opt2.load_state_dict(saved)
    assert {"old_dirs", "old_stps", "ro", "H_diag"} <= opt2.state[params2[0]].keys()
    for _ in range(2):
        opt.step(closure)
        opt2.step(closure2)
        assert_same(params2, params)


@pytest.mark.parametrize("kwargs", SETTINGS[:2], ids=str)
def test_complex_parameters_are_their_real_and_imaginary_parts(kwargs: dict) -> None:
    """A complex parameter is optimized as torch.view_as_real of it: the same steps as on the real
    view, and as torch.optim.LBFGS on the complex parameter."""
    z0 = torch.randn(4, dtype=torch.complex64, generator=GEN)
    target = torch.randn(4, dtype=torch.complex64, generator=GEN)

    def run(cls: type, real: bool) -> torch.Tensor:
        z = (torch.view_as_real(z0).clone() if real else z0.clone()).requires_grad_()
        opt = cls([z], **kwargs)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            zc = torch.view_as_complex(z) if real else z
            loss = (zc - target).abs().pow(2).sum() + 0.1 * zc.abs().pow(4).sum()
            loss.backward()
            return loss

        for _ in range(3):
            opt.step(closure)
        return (z if real else torch.view_as_real(z)).detach()

    ours = run(to.LBFGS, real=False)
    torch.testing.assert_close(ours, run(to.LBFGS, real=True))
    assert torch.equal(ours, run(torch.optim.LBFGS, real=False))


def test_sparse_gradients_are_made_dense() -> None:
    emb_ours = torch.nn.Embedding(5, 3, sparse=True)
    emb_ref = copy.deepcopy(emb_ours)
    idx = torch.tensor([0, 2, 2, 4])

    def closure_for(emb: torch.nn.Embedding, opt: torch.optim.Optimizer):  # noqa: ANN202
        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = emb(idx).pow(2).sum()
            loss.backward()
            return loss

        return closure

    ours, ref = to.LBFGS(emb_ours.parameters()), torch.optim.LBFGS(emb_ref.parameters())
    for _ in range(2):
        ours.step(closure_for(emb_ours, ours))
        ref.step(closure_for(emb_ref, ref))
    assert torch.equal(emb_ours.weight, emb_ref.weight)


def test_any_tolerance_but_nan() -> None:
    """tolerance_grad=inf stops before moving (the loss at the start is returned, as torch's);
    -inf never stops on the gradient; NaN is refused naming the argument."""
    params, opt, closure = problem(to.LBFGS, tolerance_grad=math.inf)
    before = [p.detach().clone() for p in params]
    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor)
    assert_same(params, before)
    params, opt, closure = problem(to.LBFGS, tolerance_grad=-math.inf, max_iter=3, max_eval=9)
    opt.step(closure)
    assert opt.state[params[0]]["n_iter"] == 3
    with pytest.raises(UserError, match="^tolerance_change: must be a number, got nan"):
        to.LBFGS(params, tolerance_change=math.nan)


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda p: to.LBFGS(p, lr=-1), ValueError, r"^lr: Invalid learning rate: -1"),
        (
            lambda p: to.LBFGS(p, lr=torch.tensor([0.1, 0.2])),
            ValueError,
            r"^lr: Tensor lr must be 1-element",
        ),
        (
            lambda p: to.LBFGS([{"params": p}, {"params": [torch.zeros(1, requires_grad=True)]}]),
            ValueError,
            r"^param_groups: LBFGS doesn't support per-parameter options \(parameter groups\)",
        ),
        (lambda p: to.LBFGS(p, history_size=0), ValueError, r"^history_size: must be an integer"),
        (lambda p: to.LBFGS(p, line_search_fn="wolfe"), ValueError, r"^line_search_fn: must be"),
        (lambda p: to.LBFGS(p).step(None), TypeError, r"closure"),
    ],
)
def test_errors_are_torchs_and_name_the_argument(build, error: type, message: str) -> None:  # noqa: ANN001
    """From Python a bad argument names the argument (no config path) with torch's exception type
    and, where torch has them, its words."""
    with pytest.raises(error, match=message):
        build([torch.zeros(2, requires_grad=True)])


def test_config_names_the_config_path() -> None:
    with pytest.raises(UserError, match=r"^optim.lr: Invalid learning rate"):
        to.create("lbfgs", [torch.zeros(2, requires_grad=True)], lr=-1)
