"""The user's own model: `model.kind: "package.module:factory"` is called as
`factory(input_shape, num_classes, **model.args)` and must give an nn.Module mapping a batch
`(N, *input_shape)` to logits `(N, num_classes)`; a dry forward pass checks that before training,
so a wrong model is one line naming model.kind, not a traceback deep in the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.config import ModelConfig
from trainlab.errors import UserError
from trainlab.plugins import UNIMPORTABLE, default_dtype_kept, first_line, load_object

Factory = Callable[..., Any]


def load_factory(kind: str, search_dirs: Iterable[str | Path] = ()) -> Factory:
    """The factory model.kind names (a run trained on an unimportable object says so)."""
    module, _, attr = kind.partition(":")
    if module == UNIMPORTABLE:
        raise UserError(
            f"model.kind: this run's model was given as a Python object ({attr}) that cannot be "
            "imported back, so it cannot be rebuilt from the run directory; load it into your "
            "own module with trainlab.load_run(RUN).model(module=MyNet()) or trainlab eval RUN "
            "--model module:factory, or train with a factory defined in an importable module "
            "(not __main__, not a lambda or local function)"
        )
    with default_dtype_kept("model.kind", kind):
        factory = load_object(kind, "model.kind", search_dirs)
    if not callable(factory):
        raise UserError(f"model.kind: {kind} is a {type(factory).__name__}, not a factory")
    return factory


def call_factory(
    factory: Factory, name: str, input_shape: tuple[int, ...], num_classes: int, args: dict
) -> nn.Module:
    """`factory(input_shape, num_classes, **args)`, checked to be an nn.Module."""
    try:
        with default_dtype_kept("model.kind", name):
            model = factory(tuple(input_shape), num_classes, **args)
    except UserError:
        raise
    except TypeError as err:
        field = "model.args" if "keyword argument" in str(err) else "model.kind"
        raise UserError(
            f"{field}: {name}(input_shape, num_classes, **model.args) raised {first_line(err)}"
        ) from None
    except Exception as err:
        raise UserError(
            f"model.kind: {name}(input_shape, num_classes, **model.args) raised {first_line(err)}"
        ) from None
    if not isinstance(model, nn.Module):
        raise UserError(
            f"model.kind: {name} returns a {type(model).__name__}; it must return a torch.nn.Module"
        )
    return model


def check_output(
    model: nn.Module,
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    field: str = "model.kind",
    why: str = "",
) -> None:
    """A dry forward pass on a batch of two zeros (eval mode, no gradients, on the model's
    device): the logits must be (2, num_classes); a mistake names `field`. The training mode is
    kept."""
    was_training = model.training
    device = next(model.parameters(), torch.empty(0)).device
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros((2, *input_shape), device=device))
    except Exception as err:
        raise UserError(
            f"{field}: {name}'s model fails on a batch of shape {(2, *input_shape)}{why}: "
            f"{first_line(err)}"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise UserError(
            f"{field}: {name}'s model returns a {type(out).__name__}; it must return a "
            f"tensor of logits (N, {num_classes})"
        )
    if tuple(out.shape) != (2, num_classes):
        raise UserError(
            f"{field}: {name} returns logits of shape {tuple(out.shape)} for {num_classes} "
            f"classes; expected (2, {num_classes})"
        )
    if not out.is_floating_point():
        raise UserError(
            f"{field}: {name} returns logits of dtype {out.dtype}; they must be floating "
            "point (the loss and its gradient need real numbers)"
        )


def build_plugin_model(
    cfg: ModelConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    search_dirs: Iterable[str | Path] = (),
    factory: Factory | None = None,
) -> nn.Module:
    """The plugin model for inputs of this shape: `factory` if given (the Python API), else the
    one model.kind names, looked up on sys.path, in `search_dirs` and the current directory."""
    name = cfg.kind
    if factory is None:
        factory = load_factory(cfg.kind, search_dirs)
    else:
        name = getattr(factory, "__qualname__", type(factory).__name__)
    model = call_factory(factory, name, input_shape, num_classes, dict(cfg.args))
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError(
            f"model.kind: {name}'s model has no trainable parameters (none, or every one with "
            "requires_grad=False); training would change nothing"
        )
    check_output(model, name, input_shape, num_classes)
    return model
