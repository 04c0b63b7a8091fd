"""trainlab.optim where PyTorch's own optimizer suite found it was not drop-in: differentiable=True
(gradcheck through a step, tensor hyperparameters), a `step` saved as a plain number, sparse
gradients, fused=True on a device without fused kernels."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import trainlab.optim as to

DIFF_CASES = [
    ("SGD", {"lr": 0.9}, {"momentum_buffer": None}),
    ("SGD", {"lr": 0.9, "momentum": 0.9, "weight_decay": 0.1, "nesterov": True}, {"mb": None}),
    ("Adagrad", {"lr": 0.9, "weight_decay": 0.1}, {"step": 10.0, "sum": None}),
    (
        "RMSprop",
        {"lr": 0.9, "maximize": True, "momentum": 0.9, "centered": True, "weight_decay": 0.1},
        {"step": 0.0, "square_avg": None, "momentum_buffer": None, "grad_avg": 1e-2},
    ),
    ("Adam", {"lr": 0.9, "amsgrad": True}, {"step": 10.0, "exp_avg": None, "exp_avg_sq": None}),
    ("AdamW", {"lr": 0.9, "amsgrad": True}, {"step": 10.0, "exp_avg": None, "exp_avg_sq": None}),
]


def _state(spec: dict, gen: torch.Generator) -> dict:
    """`None`: a random buffer that requires grad; a float f: f * such a buffer, or for `step`
    a float64 0-d tensor that does not (torch's differentiable tests build the state so)."""
    out = {}
    for key, v in spec.items():
        key = "momentum_buffer" if key == "mb" else key
        if key == "step":
            out[key] = torch.tensor(v, dtype=torch.float64)
        else:
            t = torch.rand(10, dtype=torch.float64, generator=gen) * (1.0 if v is None else v)
            out[key] = t.requires_grad_()
    if "exp_avg" in out:
        out["max_exp_avg_sq"] = torch.rand(10, dtype=torch.float64, generator=gen)
        out["max_exp_avg_sq"].requires_grad_()
    return out


def _one_step(p, grad, state, cls, kwargs, *state_values):  # noqa: ANN001, ANN202
    """One step from a given state, as a function of the param, the gradient and the state."""
    p = p.clone()
    p.grad = grad
    opt = cls([p], **kwargs)
    opt.state[p].update({k: v.clone() for k, v in state.items()})
    opt.step()
    return (p,) + tuple(v for v in opt.state[p].values() if v.requires_grad)


@pytest.mark.parametrize("case", DIFF_CASES, ids=lambda c: c[0] + "-" + "-".join(c[1]))
def test_differentiable_step_passes_gradcheck_and_matches_torch(case: tuple) -> None:
    """differentiable=True: the step is differentiable with respect to the param, the gradient
    and the state (gradcheck), and gives torch.optim's numbers."""
    name, kwargs, spec = case
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(10, dtype=torch.float64, generator=gen).requires_grad_()
    grad = torch.rand(10, dtype=torch.float64, generator=gen).requires_grad_()
    state = _state(spec, gen)
    kwargs = {**kwargs, "differentiable": True}
    ours = getattr(to, name)
    assert gradcheck(_one_step, (p, grad, state, ours, kwargs, *state.values()))
    theirs = _one_step(p, grad, state, getattr(torch.optim, name), kwargs)
    mine = _one_step(p, grad, state, ours, kwargs)
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b)


def _meta_loss(params, grad, state, cls, kwargs, *tensors):  # noqa: ANN001, ANN202
    """Two steps on a tiny regression, then the loss differentiated with respect to the tensor
    hyperparameters (a meta-gradient, as in learning-rate learning)."""
    params = params.clone()
    params.grad = grad
    kwargs = dict(kwargs)
    if "beta1" in kwargs:
        kwargs["betas"] = (kwargs.pop("beta1"), kwargs.pop("beta2"))
    hyper = [v for v in tensors if v.requires_grad and v.dim() == 0]
    opt = cls([params], **kwargs)
    opt.state[params].update({k: v.clone() for k, v in state.items()})
    x, y = torch.tensor([1.0], dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64)
    for _ in range(2):
        loss = torch.nn.functional.mse_loss(x * params.sum(), y)
        loss.backward(inputs=(params,), create_graph=True)
        opt.step()
        opt.zero_grad()
    grads = torch.autograd.grad(loss, hyper, create_graph=True)
    assert all(g is not None for g in grads)
    return (loss, *grads)


@pytest.mark.parametrize(
    "name, hyper",
    [
        ("Adam", {"lr": 0.001}),
        ("Adam", {"weight_decay": 0.999}),
        ("Adam", {"beta1": 0.9, "beta2": 0.999}),
        ("AdamW", {"lr": 0.001, "weight_decay": 0.5}),
        ("SGD", {"lr": 0.01, "momentum": 0.9}),
        ("RMSprop", {"lr": 0.01}),
        ("Adagrad", {"lr": 0.01}),
    ],
)
def test_tensor_hyperparameters_get_gradients(name: str, hyper: dict) -> None:
    """A tensor lr, weight_decay or betas stays in the graph: its gradient through two steps
    passes gradcheck (torch's test_adam_differentiable_* do the same for torch.optim.Adam)."""
    gen = torch.Generator().manual_seed(1)
    params = torch.rand(10, dtype=torch.float64, generator=gen).requires_grad_()
    grad = torch.rand(10, dtype=torch.float64, generator=gen).requires_grad_()
    tensors = {k: torch.tensor(v, dtype=torch.float64).requires_grad_() for k, v in hyper.items()}
    kwargs = {**tensors, "differentiable": True}
    state: dict = {}
    if name == "SGD":  # a velocity already: the first step uses the momentum too
        state = {"momentum_buffer": torch.rand(10, dtype=torch.float64, generator=gen)}
    if name in ("Adam", "AdamW"):
        state = {
            "step": torch.tensor(10.0, dtype=torch.float64),
            "exp_avg": torch.rand(10, dtype=torch.float64, generator=gen).requires_grad_(),
            "exp_avg_sq": torch.rand(10, dtype=torch.float64, generator=gen).requires_grad_(),
        }
    cls = getattr(to, name)
    inputs = (params, grad, state, cls, kwargs, *state.values(), *tensors.values())
    assert gradcheck(_meta_loss, inputs)


def test_differentiable_false_keeps_autograd_out_of_the_step() -> None:
    p = torch.ones(3, requires_grad=True)
    p.grad = torch.ones(3)
    opt = to.Adam([p], lr=0.1)
    opt.step()
    assert p.grad_fn is None and not opt.state[p]["exp_avg"].requires_grad


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("Adam", {"lr": 0.01}),
        ("AdamW", {"lr": 0.01, "amsgrad": True}),
        ("Adagrad", {"lr": 0.1}),
        ("RMSprop", {"lr": 0.01, "centered": True}),
    ],
)
def test_state_dict_with_plain_number_step_loads_and_steps(name: str, kwargs: dict) -> None:
    """A state_dict whose `step` is a Python number (older torch checkpoints, hand-built
    states): torch converts it on load, and so do we; the next steps agree with torch's."""
    gen = torch.Generator().manual_seed(2)
    start = torch.randn(4, 3, generator=gen)
    grads = [torch.randn(4, 3, generator=gen) for _ in range(4)]
    results = []
    for module in (torch.optim, to):
        p = start.clone().requires_grad_()
        opt = getattr(module, name)([p], **kwargs)
        p.grad = grads[0]
        opt.step()
        sd = opt.state_dict()
        sd["state"][0]["step"] = int(sd["state"][0]["step"].item())
        opt = getattr(module, name)([p], **kwargs)
        opt.load_state_dict(sd)
        assert isinstance(opt.state[p]["step"], torch.Tensor)
        for g in grads[1:]:
            p.grad = g
            opt.step()
        assert opt.state[p]["step"].item() == 4
        results.append(p.detach().clone())
    torch.testing.assert_close(results[1], results[0])


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("SGD", {"lr": 0.1}),
        ("SGD", {"lr": 0.1, "momentum": 0.9, "maximize": True}),
        ("Adagrad", {"lr": 0.1}),
        ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "maximize": True}),
    ],
)
def test_sparse_gradients_as_torch(name: str, kwargs: dict) -> None:
    """nn.Embedding(sparse=True) trains with SGD and Adagrad, to torch.optim's numbers."""
    results = []
    for module in (torch.optim, to):
        torch.manual_seed(3)
        emb = torch.nn.Embedding(10, 4, sparse=True)
        opt = getattr(module, name)(emb.parameters(), **kwargs)
        gen = torch.Generator().manual_seed(4)
        for _ in range(5):
            idx = torch.randint(0, 10, (6,), generator=gen)
            opt.zero_grad()
            emb(idx).pow(2).sum().backward()
            assert emb.weight.grad.is_sparse
            opt.step()
        results.append(emb.weight.detach().clone())
    torch.testing.assert_close(results[1], results[0])


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("Adam", {}, "Adam does not support sparse gradients"),
        ("RMSprop", {}, "RMSprop does not support sparse gradients"),
        ("Adagrad", {"weight_decay": 0.1}, "weight_decay option is not compatible"),
    ],
)
def test_sparse_gradients_refused_where_torch_refuses(name: str, kwargs: dict, message: str):  # noqa: ANN201
    for module in (torch.optim, to):
        emb = torch.nn.Embedding(10, 4, sparse=True)
        opt = getattr(module, name)(emb.parameters(), **kwargs)
        emb(torch.tensor([1, 2])).sum().backward()
        with pytest.raises(RuntimeError, match=message):
            opt.step()


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "Adam", "AdamW"])
def test_fused_on_meta_params_raises_as_torch(name: str) -> None:
    """fused=True where no fused kernel can run (the meta device): a RuntimeError at the step."""
    for module in (torch.optim, to):
        p = torch.zeros(3, device="meta", requires_grad=True)
        p.grad = torch.zeros(3, device="meta")
        opt = getattr(module, name)([p], fused=True)
        with pytest.raises(RuntimeError, match="`fused=True` requires all the params"):
            opt.step()
