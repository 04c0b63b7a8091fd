"""DropConnect and stochastic depth: train-time statistics, test-time identity, gradients."""

import pytest
import torch
from torch import nn

from trainlab.errors import UserError
from trainlab.nn.layers import (
    DropConnectConv,
    DropConnectConv1d,
    DropConnectConv2d,
    DropConnectLinear,
    StochasticDepth,
    constant_drop_probs,
    linear_drop_probs,
)

pytestmark = pytest.mark.usefixtures("seeded_one_thread")


def _effective_linear_weight(layer: DropConnectLinear) -> torch.Tensor:
    """The weight one forward pass used, read back through the identity input (bias off)."""
    eye = torch.eye(layer.in_features)
    return layer(eye).T  # F.linear(I, W~) = W~^T


def test_dropconnect_linear_zero_fraction_matches_p_and_kept_weights_are_rescaled():
    p = 0.3
    layer = DropConnectLinear(100, 100, bias=False, p=p).train()
    w = layer.weight.detach()
    used = _effective_linear_weight(layer).detach()
    dropped = used == 0
    assert abs(dropped.float().mean().item() - p) < 0.02  # 10,000 Bernoulli draws: sd 0.005
    torch.testing.assert_close(used[~dropped], w[~dropped] / (1 - p))


def test_dropconnect_linear_one_mask_per_forward_shared_by_the_batch():
    layer = DropConnectLinear(30, 20, p=0.5).train()
    x = torch.randn(1, 30).expand(8, 30)
    y = layer(x)
    assert torch.equal(y, y[:1].expand_as(y))  # all examples saw the same weights
    assert not torch.equal(layer(x), y)  # a new forward draws a new mask


def test_dropconnect_linear_train_mean_preserved():
    layer = DropConnectLinear(10, 10, bias=False, p=0.4).train()
    mean = torch.stack([_effective_linear_weight(layer) for _ in range(3000)]).mean(0)
    w = layer.weight.detach()
    # per entry: sd of the mean = |w| sqrt(p / (1 - p)) / sqrt(3000) ~ 0.015 |w|
    assert torch.all((mean.detach() - w).abs() <= 0.08 * w.abs() + 1e-6)


def test_dropconnect_linear_eval_is_the_plain_layer_and_checkpoints_interchange():
    layer = DropConnectLinear(7, 5, p=0.5)
    plain = nn.Linear(7, 5)
    plain.load_state_dict(layer.state_dict())  # same keys: weight, bias
    assert set(layer.state_dict()) == {"weight", "bias"}
    assert isinstance(layer, nn.Linear)
    x = torch.randn(4, 7)
    layer.eval()
    assert torch.equal(layer(x), plain(x))
    assert torch.equal(layer(x), layer(x))


def test_dropconnect_gradient_is_zero_for_dropped_weights():
    layer = DropConnectLinear(50, 40, bias=False, p=0.5).train()
    eye = torch.eye(50)
    used = layer(eye).T
    used.sum().backward()
    grad = layer.weight.grad
    dropped = used.detach() == 0
    assert torch.all(grad[dropped] == 0)
    torch.testing.assert_close(grad[~dropped], torch.full_like(grad[~dropped], 2.0))


@pytest.mark.parametrize("dims", [1, 2])
def test_dropconnect_conv_zero_fraction_and_eval_matches_plain_conv(dims):
    p = 0.25
    layer = DropConnectConv(dims, 64, 64, kernel_size=1, bias=False, p=p)
    assert isinstance(layer, DropConnectConv1d if dims == 1 else DropConnectConv2d)
    eye = torch.eye(64).reshape(64, 64, *([1] * dims))  # a 1x1 conv of the identity reads W~
    used = layer.train()(eye).reshape(64, 64).T.detach()
    w = layer.weight.detach().reshape(64, 64)
    dropped = used == 0
    assert abs(dropped.float().mean().item() - p) < 0.03  # 4096 draws: sd 0.007
    torch.testing.assert_close(used[~dropped], w[~dropped] / (1 - p))

    big = DropConnectConv(dims, 3, 6, kernel_size=3, stride=2, padding=1, p=p).eval()
    plain = (nn.Conv1d if dims == 1 else nn.Conv2d)(3, 6, 3, stride=2, padding=1)
    plain.load_state_dict(big.state_dict())
    x = torch.randn(2, 3, *([9] * dims))
    assert torch.equal(big(x), plain(x))


def test_dropconnect_conv_train_mean_preserved():
    layer = DropConnectConv(2, 2, 3, kernel_size=3, padding=1, p=0.5)
    x = torch.randn(1, 2, 6, 6)
    with torch.no_grad():
        expected = layer.eval()(x)
        layer.train()
        samples = torch.stack([layer(x) for _ in range(1000)])
    # the train-time mean is the test-time output, within 5 standard errors for every output
    stderr = samples.std(0) / 1000**0.5
    assert torch.all((samples.mean(0) - expected).abs() < 5 * stderr + 1e-6)
    assert stderr.max() > 0  # it really was random


def test_dropconnect_bad_p_is_a_user_error():
    for p in (1.0, -0.1, float("nan"), 1.5):
        with pytest.raises(UserError, match=r"\.p: must be a drop probability in \[0, 1\)"):
            DropConnectLinear(3, 3, p=p)
    with pytest.raises(UserError, match="DropConnectConv2d.p"):
        DropConnectConv(2, 3, 3, 3, p=1.0)
    with pytest.raises(ValueError, match="dims"):
        DropConnectConv(3, 3, 3, 3)


def test_stochastic_depth_drops_whole_examples_with_probability_p_and_keeps_the_mean():
    p = 0.3
    sd = StochasticDepth(p).train()
    branch = torch.ones(20000, 3, 2, 2)
    out = sd(branch)
    per_example = out.reshape(20000, -1)
    dropped = (per_example == 0).all(1)
    kept = (per_example == 1 / (1 - p)).all(1)
    assert torch.all(dropped | kept)  # a branch is dropped whole, never in part
    assert abs(dropped.float().mean().item() - p) < 0.015  # sd 0.003
    assert abs(out.mean().item() - 1.0) < 0.03


def test_stochastic_depth_eval_is_identity_and_p0_is_identity():
    x = torch.randn(5, 4)
    assert torch.equal(StochasticDepth(0.5).eval()(x), x)
    assert torch.equal(StochasticDepth(0.0).train()(x), x)


def test_stochastic_depth_gradient_flows_through_kept_branches_and_the_skip():
    p = 0.5
    branch = nn.Linear(4, 4)
    sd = StochasticDepth(p).train()
    x = torch.randn(64, 4, requires_grad=True)
    b = branch(x)
    out = x + sd(b)
    out.sum().backward()
    keep = (out - x).detach().abs().sum(1) != 0  # examples whose branch survived
    assert 0 < keep.sum() < 64
    # the skip carries gradient 1 to every example; the kept branches add W^T 1 / (1 - p)
    expected_x = 1 + keep[:, None].float() * branch.weight.sum(0) / (1 - p)
    torch.testing.assert_close(x.grad, expected_x)
    # the branch's weights learn only from the examples that kept it
    expected_w = (keep[:, None].float() * x.detach()).sum(0).expand(4, 4) / (1 - p)
    torch.testing.assert_close(branch.weight.grad, expected_w)


def test_stochastic_depth_masks_follow_the_default_generator_seed():
    sd = StochasticDepth(0.5).train()
    x = torch.ones(100, 2)
    torch.manual_seed(3)
    a = sd(x)
    torch.manual_seed(3)
    assert torch.equal(sd(x), a)


def test_drop_prob_rules():
    assert linear_drop_probs(0.5, 5) == pytest.approx([0.0, 0.125, 0.25, 0.375, 0.5])
    assert linear_drop_probs(0.2, 1) == [0.2]
    assert linear_drop_probs(0.2, 0) == []
    assert constant_drop_probs(0.1, 3) == [0.1, 0.1, 0.1]
    with pytest.raises(UserError, match=r"^model\.stochastic_depth: must be a drop probability"):
        linear_drop_probs(1.0, 4)
    with pytest.raises(UserError, match="StochasticDepth.p"):
        StochasticDepth(-0.2)
