"""torch's fused CPU kernels (torch._fused_sgd_, _fused_adagrad_, _fused_adam_, _fused_adamw_)
as the eager path of the rules they compute: SGD (momentum, Nesterov, dampening), Adagrad, Adam
and AdamW, with every option of ours (weight decay, maximize, amsgrad). One C++ pass per tensor
at the machine's memory bandwidth from the first step, with nothing to compile: on 13.6M
parameters our multi-tensor path (rules.py on TensorLists, one torch._foreach_* op at a time,
each a sweep of memory) measured 1.6-5x these kernels per step (Adam 5x: its ~8 ops each read
and write the whole state), so a run's first steps cost 2-6x torch's fused ones while it waited
for the compiled path (see compiled.py).

Numbers: each kernel is called with the arguments torch.optim's fused=True path gives it (the
group's own lr, betas, eps, ... and the step count as a float32 0-d tensor), so a step equals
torch.optim's fused=True step bitwise; against our rule's multi-tensor or compiled update the last
float bits differ (tests/test_optim.py checks 1e-5 against torch's for-loop, as for every path).
Which path a step takes is a function of the group's arguments, its tensors' devices and layouts,
TRAINLAB_COMPILE and the step count only, never of the clock (see paths.choose).

A kernel reads each tensor through its data pointer with one index for param, grad and state, so
it is used only when every one of them is contiguous and on the CPU (`fits`); otherwise the step
takes the multi-tensor path. Each function takes the group's tensors (params, grads, the state's
buffers by torch's names), the step's hyperparameters h (the optimizer's _hyper: floats and
flags), the group itself (for the values torch's kernel takes as given: betas, lr_decay) and
the step count.
"""

from __future__ import annotations

from typing import Any

import torch


def fits(
    params: list[torch.Tensor], grads: list[torch.Tensor], buffers: dict[str, list[torch.Tensor]]
) -> bool:
    """Whether a kernel can take these tensors: all contiguous CPU tensors (a kernel indexes
    param, grad and state alike)."""
    for tensors in (params, grads, *buffers.values()):
        for t in tensors:
            if not t.is_contiguous() or t.device.type != "cpu":
                return False
    return True


def _steps(step: int, n: int) -> list[torch.Tensor]:
    """The step count as torch's fused path holds it (float32 0-d), once per tensor (read only)."""
    return [torch.tensor(float(step), dtype=torch.float32)] * n


def sgd(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    buffers: dict[str, list[torch.Tensor]],
    h: dict[str, Any],
    group: dict[str, Any],
    step: int,
) -> None:
    """SGD with or without momentum; the velocity's first step (h["first"]) copies dx, without
    dampening, as ours and torch's do."""
    torch._fused_sgd_(
        params,
        grads,
        buffers.get("momentum_buffer", []),
        weight_decay=h["weight_decay"],
        momentum=h["momentum"],
        lr=h["lr"],
        dampening=float(group["dampening"]),
        nesterov=h["nesterov"],
        maximize=h["maximize"],
        is_first_step=h["momentum_on"] and h["first"],
    )


def adagrad(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    buffers: dict[str, list[torch.Tensor]],
    h: dict[str, Any],
    group: dict[str, Any],
    step: int,
) -> None:
    """Adagrad; the kernel decays lr as 1 / (1 + (step - 1) * lr_decay) itself."""
    torch._fused_adagrad_(
        params,
        grads,
        buffers["sum"],
        _steps(step, len(params)),
        lr=h["lr"],
        lr_decay=float(group["lr_decay"]),
        weight_decay=h["weight_decay"],
        eps=h["eps"],
        maximize=h["maximize"],
    )


def adam(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    buffers: dict[str, list[torch.Tensor]],
    h: dict[str, Any],
    group: dict[str, Any],
    step: int,
) -> None:
    """Adam, AdamW when the decay is decoupled; the kernel does the bias correction itself."""
    beta1, beta2 = (float(b) for b in group["betas"])
    kernel = torch._fused_adamw_ if h["decoupled"] else torch._fused_adam_
    kernel(
        params,
        grads,
        buffers["exp_avg"],
        buffers["exp_avg_sq"],
        buffers.get("max_exp_avg_sq", []),
        _steps(step, len(params)),
        lr=h["lr"],
        beta1=beta1,
        beta2=beta2,
        weight_decay=h["weight_decay"],
        eps=h["eps"],
        amsgrad=h["amsgrad"],
        maximize=h["maximize"],
    )
