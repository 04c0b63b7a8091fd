"""torch.optim.Optimizer without its import of torch._dynamo: the base class of every optimizer
of ours (first-order ones through base.py, L-BFGS, Newton).

torch.optim.Optimizer wraps add_param_group, zero_grad, state_dict and load_state_dict in
`torch._disable_dynamo`, which imports torch._dynamo (sympy included, about 1 s of CPU) on the
first call, to keep dynamo from tracing them. While torch._dynamo is not loaded nothing can trace
them, so the plain function under the wrapper is the same call; once a run compiles
(torch.compile, our compiled update) dynamo is loaded and the wrapped methods are called from
then on. That import was most of a search worker's time from its first trial to its first epoch
(issue 30); tests/test_imports.py checks that a run compiling nothing never loads dynamo.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch


def _without_dynamo(name: str) -> Callable[..., Any]:
    """torch.optim.Optimizer's method `name`, called plain while torch._dynamo is not loaded."""
    wrapped = getattr(torch.optim.Optimizer, name)
    plain = getattr(wrapped, "__wrapped__", wrapped)

    def method(self: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        if "torch._dynamo" in sys.modules:
            return wrapped(self, *args, **kwargs)
        return plain(self, *args, **kwargs)

    method.__name__, method.__qualname__, method.__doc__ = name, name, wrapped.__doc__
    return method


class Optimizer(torch.optim.Optimizer):
    """torch.optim.Optimizer, its four dynamo-wrapped methods called plain until dynamo loads."""

    add_param_group = _without_dynamo("add_param_group")
    state_dict = _without_dynamo("state_dict")
    load_state_dict = _without_dynamo("load_state_dict")
    zero_grad = _without_dynamo("zero_grad")
