"""Newton and L-BFGS on L2-regularized logistic regression on the digits data: both reach the
minimum scipy's L-BFGS-B finds (to 1e-6 relative loss), Newton in a few iterations; plus the
closure API and Newton's refusal of large models."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

import trainlab.optim as to
from trainlab.errors import UserError

LAMBDA = 1e-3  # L2 strength on the weights: loss = cross-entropy + LAMBDA / 2 * |W|^2


@pytest.fixture(autouse=True)
def _one_thread():  # noqa: ANN202
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor, float]:
    """The data (features scaled to [0, 1]) and scipy's minimum of the loss."""
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    onehot = np.eye(10)[y]

    def loss_and_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = w[:640].reshape(64, 10), w[640:]
        logits = x @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -(onehot * log_p).sum() / len(x) + 0.5 * LAMBDA * (weights**2).sum()
        dlogits = (np.exp(log_p) - onehot) / len(x)
        grad = np.concatenate([(x.T @ dlogits + LAMBDA * weights).ravel(), dlogits.sum(0)])
        return loss, grad

    with threadpool_limits(1):  # BLAS threads fighting over 2 shared cores cost 40x here
        res = scipy.optimize.minimize(
            loss_and_grad,
            np.zeros(650),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 5000, "gtol": 1e-12, "ftol": 1e-16},
        )
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y), float(res.fun)


def problem(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype = torch.float32):  # noqa: ANN201
    """Zero-initialized weights, the loss as a function of them, and that loss in float64."""
    weights = torch.zeros(64, 10, dtype=dtype, requires_grad=True)
    bias = torch.zeros(10, dtype=dtype, requires_grad=True)
    x = x.to(dtype)

    def loss(w: torch.Tensor = weights, b: torch.Tensor = bias, data: torch.Tensor = x):
        return torch.nn.functional.cross_entropy(data @ w + b, y) + 0.5 * LAMBDA * (w**2).sum()

    def exact() -> float:
        with torch.no_grad():
            return float(loss(weights.double(), bias.double(), x.double()))

    return [weights, bias], loss, exact


def standard_closure(opt: torch.optim.Optimizer, loss):  # noqa: ANN001, ANN201
    """torch.optim.LBFGS's closure: zero the gradients, compute the loss, backward, return it."""

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    return closure


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_lbfgs_reaches_scipys_minimum(digits, dtype: torch.dtype) -> None:  # noqa: ANN001
    x, y, best = digits
    params, loss, exact = problem(x, y, dtype)
    opt = to.LBFGS(params, line_search_fn="strong_wolfe", max_iter=100)
    closure = standard_closure(opt, loss)
    first = opt.step(closure)
    assert first.item() == pytest.approx(np.log(10), rel=1e-6)  # the loss at the start
    for _ in range(5):
        if (exact() - best) / best <= 1e-6:
            break
        opt.step(closure)
    assert (exact() - best) / best <= 1e-6
    state = opt.state[params[0]]
    assert state["n_iter"] >= 20 and state["func_evals"] >= state["n_iter"]


def test_lbfgs_without_line_search_decreases_the_loss(digits) -> None:  # noqa: ANN001
    x, y, _ = digits
    params, loss, exact = problem(x, y)
    opt = to.LBFGS(params, lr=0.5, max_iter=30)
    opt.step(standard_closure(opt, loss))
    assert exact() < 0.5 * np.log(10)


def test_newton_reaches_scipys_minimum_in_few_iterations(digits) -> None:  # noqa: ANN001
    """Pure Newton (lr 1, backtracking never needed) converges quadratically: 5 iterations from
    zero on this problem (the report quotes the count)."""
    x, y, best = digits
    params, loss, exact = problem(x, y)
    opt = to.Newton(params)
    closure = standard_closure(opt, loss)
    gaps = []
    for _ in range(8):
        opt.step(closure)
        gaps.append((exact() - best) / best)
        if gaps[-1] <= 1e-6:
            break
    assert gaps[-1] <= 1e-6
    assert opt.state[params[0]]["n_iter"] == len(gaps) <= 6
    assert all(b < a for a, b in zip(gaps, gaps[1:]))  # monotone, thanks to the line search


def test_newton_exact_hessian_and_closure_without_backward() -> None:
    """On a quadratic 0.5 x^T A x - c^T x one Newton step lands on A^-1 c exactly; the closure
    may return the loss without calling backward."""
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    a = m @ m.T + 6 * torch.eye(6, dtype=torch.float64)
    c = torch.randn(6, generator=gen, dtype=torch.float64)
    xs = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = to.Newton([xs], line_search_fn=None)
    opt.step(lambda: 0.5 * xs @ a @ xs - c @ xs)
    assert torch.allclose(xs.detach(), torch.linalg.solve(a, c), rtol=1e-10, atol=1e-12)


def test_newton_refuses_large_models() -> None:
    model = torch.nn.Linear(100, 50)  # 5050 parameters
    with pytest.raises(
        UserError,
        match=r"^max_params: Newton .* 5050 parameters, above "
        r"max_params=4096 \(use LBFGS",
    ):
        to.Newton(model.parameters())
    assert to.Newton(model.parameters(), max_params=6000).defaults["max_params"] == 6000


def test_second_order_bad_input() -> None:
    p = [torch.zeros(3, requires_grad=True)]
    with pytest.raises(UserError, match="^max_iter: must be an integer >= 1"):
        to.LBFGS(p, max_iter=0)
    with pytest.raises(UserError, match="^param_groups: Newton doesn't support per-parameter"):
        to.Newton([{"params": p}, {"params": [torch.zeros(2, requires_grad=True)]}])
    with pytest.raises(TypeError, match="closure"):  # torch: TypeError, None is not callable
        to.LBFGS(p).step(None)
    with pytest.raises(UserError, match="^params: Newton works on real parameters only"):
        to.Newton([torch.zeros(2, dtype=torch.complex64, requires_grad=True)])
