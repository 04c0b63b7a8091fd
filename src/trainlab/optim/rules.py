"""The lecture's update rules, each a pure function of (param, grad, state, h): it updates param
and the state's buffers in place from the gradient and the step's hyperparameters h (built by the
optimizer class's _hyper), and reads nothing else. Each runs unchanged on one tensor, on a
TensorList (the multi-tensor path), under torch.compile, and on Differentiable tensors
(differentiable=True): see paths.py. The state keys are torch.optim's; the comments use the
lecture's names (velocity, grad_squared, first_moment, second_moment).
"""

from __future__ import annotations

from typing import Any

Tensorish = Any  # a torch.Tensor, a TensorList or a Differentiable: the rules take any of them
Hyper = dict[str, Any]


def direction(param: Tensorish, grad: Tensorish, h: Hyper) -> Tensorish:
    """dx, the direction the updates step against: the gradient of the loss (of minus the loss
    when maximizing), plus the L2 penalty's gradient weight_decay * param."""
    dx = grad.neg() if h["maximize"] else grad
    if h["l2"]:
        dx = dx.add(param, alpha=h["weight_decay"])
    return dx


def sgd(param: Tensorish, grad: Tensorish, state: dict[str, Tensorish], h: Hyper) -> None:
    """SGD, with momentum (the velocity; `first`: its first step) and Nesterov's look-ahead."""
    dx = direction(param, grad, h)
    if h["momentum_on"]:
        velocity = state["momentum_buffer"]
        if h["first"]:
            velocity.copy_(dx)  # velocity = dx   (= rho * 0 + dx: it starts at 0)
        else:
            # velocity = rho * velocity + (1 - dampening) * dx      (rho: momentum, "friction")
            velocity.mul_(h["momentum"]).add_(dx, alpha=h["one_minus_dampening"])
        # Nesterov: step from the look-ahead point, dx + rho * velocity; else by the velocity
        dx = dx.add(velocity, alpha=h["momentum"]) if h["nesterov"] else velocity
    # x -= learning_rate * dx
    param.add_(dx, alpha=-h["lr"])


def adagrad(param: Tensorish, grad: Tensorish, state: dict[str, Tensorish], h: Hyper) -> None:
    """AdaGrad; h["clr"] is the learning rate after its 1/t decay (lr_decay)."""
    dx = direction(param, grad, h)
    grad_squared = state["sum"]
    grad_squared.addcmul_(dx, dx, value=1)  # grad_squared += dx * dx
    # x -= learning_rate * dx / (sqrt(grad_squared) + eps)
    param.addcdiv_(dx, grad_squared.sqrt().add_(h["eps"]), value=-h["clr"])


def rms(state: dict[str, Tensorish], h: Hyper) -> Tensorish:
    """RMSProp's divisor: sqrt(grad_squared) + eps (centered: sqrt(grad_squared - grad_avg**2))."""
    if h["centered"]:
        avg = state["square_avg"].addcmul(state["grad_avg"], state["grad_avg"], value=-1).sqrt_()
    else:
        avg = state["square_avg"].sqrt()
    return avg.add_(h["eps"])


def rmsprop(param: Tensorish, grad: Tensorish, state: dict[str, Tensorish], h: Hyper) -> None:
    """RMSProp: AdaGrad with a leaky sum; alpha is the lecture's decay_rate."""
    dx = direction(param, grad, h)
    # grad_squared = decay_rate * grad_squared + (1 - decay_rate) * dx * dx
    state["square_avg"].mul_(h["alpha"]).addcmul_(dx, dx, value=h["one_minus_alpha"])
    if h["centered"]:  # grad_avg = decay_rate * grad_avg + (1 - decay_rate) * dx
        state["grad_avg"].lerp_(dx, h["one_minus_alpha"])
    if h["momentum_on"]:
        # velocity = rho * velocity + dx / (sqrt(grad_squared) + eps)
        # x -= learning_rate * velocity
        velocity = state["momentum_buffer"]
        velocity.mul_(h["momentum"]).addcdiv_(dx, rms(state, h))
        param.add_(velocity, alpha=-h["lr"])
    else:
        # x -= learning_rate * dx / (sqrt(grad_squared) + eps)
        param.addcdiv_(dx, rms(state, h), value=-h["lr"])


def second_moment(state: dict[str, Tensorish], h: Hyper) -> Tensorish:
    """The second moment Adam divides by (its running maximum with amsgrad)."""
    return state["max_exp_avg_sq"] if h["amsgrad"] else state["exp_avg_sq"]


def adam(param: Tensorish, grad: Tensorish, state: dict[str, Tensorish], h: Hyper) -> None:
    """Adam (momentum + RMSProp + bias correction); AdamW when h["decoupled"]. h["step_size"] is
    lr / (1 - beta1**t) and h["bias_correction2_sqrt"] sqrt(1 - beta2**t)."""
    if h["decoupled"]:  # AdamW: x *= 1 - learning_rate * weight_decay, outside the moments
        param.mul_(h["decay_factor"])
    dx = direction(param, grad, h)
    first_moment = state["exp_avg"]
    # first_moment = beta1 * first_moment + (1 - beta1) * dx
    first_moment.lerp_(dx, h["one_minus_beta1"])
    # second_moment = beta2 * second_moment + (1 - beta2) * dx * dx
    state["exp_avg_sq"].mul_(h["beta2"]).addcmul_(dx, dx, value=h["one_minus_beta2"])
    if h["amsgrad"]:  # divide by the largest second moment seen so far
        state["max_exp_avg_sq"].clamp_min_(state["exp_avg_sq"])
    # x -= learning_rate * first_unbias / (sqrt(second_unbias) + eps)
    denom = second_moment(state, h).sqrt().div_(h["bias_correction2_sqrt"]).add_(h["eps"])
    param.addcdiv_(first_moment, denom, value=-h["step_size"])
