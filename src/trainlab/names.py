"""Every list of names a config or a command accepts, written once.

A leaf: it imports nothing (no torch, no Optuna), so the CLI builds its parser from these without
loading either. Everything else derives from here: the config's `Literal`s (`literal(...)`), the
argparse `choices`, the name -> builder tables (each checks at import that it covers its list),
and the messages that list what is allowed.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

#: optim.name, in the lecture's order (docs/optimizers.md). lbfgs and newton train full-batch.
OPTIMIZERS = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "lbfgs",
    "newton",
)
FULL_BATCH_OPTIMIZERS = ("lbfgs", "newton")
#: the others, which step on minibatches (`trainlab landscape --optimizers`)
MINIBATCH_OPTIMIZERS = tuple(n for n in OPTIMIZERS if n not in FULL_BATCH_OPTIMIZERS)

#: schedule.name, and schedule.per (when the learning rate is updated)
SCHEDULES = ("constant", "step", "exponential", "inverse_time", "cosine", "cosine_restarts")
SCHEDULE_PER = ("step", "epoch")

#: search.strategy (auto is the default; listed last, as the config's messages always have),
#: search.pruner, search.executor
STRATEGIES = ("grid", "random", "coarse-to-fine", "block", "tpe", "auto")
PRUNERS = ("none", "median", "halving")
EXECUTORS = ("local", "ray")
DIRECTIONS = ("maximize", "minimize")

#: train.*
DEVICES = ("cpu", "cuda", "auto")
PRECISIONS = ("fp32", "bf16", "fp16")
TTA_MODES = ("none", "flip", "ten_crop")

#: data.name: the embedded data sets, and the formats of the user's files (data.path); "file"
#: (the format guessed from data.path) and package.module:function are accepted too
DATA_SETS = ("spirals", "digits", "mnist1d", "mnist5k")
DATA_FORMATS = ("npz", "csv", "image_folder", "cifar")

#: model.kind (besides package.module:factory), model.*
MODEL_KINDS = ("mlp", "cnn", "resnet")
ACTIVATIONS = ("relu", "gelu", "tanh", "leaky_relu")
NORMS = ("none", "batch", "layer")
POOLS = ("max", "fractional", "none")

#: trainlab transfer: --mode (what trains), --solver (how a linear head is fitted), --normalize
#: (whose input statistics the network sees)
TRANSFER_MODES = ("linear", "finetune")
TRANSFER_SOLVERS = ("lbfgs", "optim")
TRANSFER_NORMALIZATIONS = ("pretrained", "new")

#: trainlab landscape --surface: the lecture's 2-parameter loss surfaces
SURFACES = ("taco", "saddle", "local-min", "noisy", "rotated", "rosenbrock")


def literal(names: tuple[str, ...]) -> Any:
    """`Literal[names...]` for a pydantic field or a type hint, from one of the lists above."""
    return Literal[names]  # type: ignore[valid-type]


def choices_of(annotation: Any) -> tuple[str, ...] | None:
    """The names a `literal(...)` annotation (or `literal(...) | None`) accepts; None for any
    other type (the inverse of `literal`, for argparse `choices` built from a model's field)."""
    if get_origin(annotation) is Literal:
        return tuple(get_args(annotation))
    inner = [a for a in get_args(annotation) if get_origin(a) is Literal]
    return tuple(get_args(inner[0])) if len(inner) == 1 else None


def one_of(field: str, names: tuple[str, ...], got: object) -> str:
    """The one-line message for a name outside its list: ``field: must be one of a, b; got 'x'``."""
    return f"{field}: must be one of {', '.join(names)}; got {got!r}"


def covers(table: dict[str, Any], names: tuple[str, ...], what: str) -> dict[str, Any]:
    """Check at import that a name -> builder table has exactly the names of its list."""
    if tuple(table) != names:
        raise AssertionError(f"{what}: the table lists {tuple(table)}, trainlab.names {names}")
    return table
