"""Every optimizer's default arguments as a config gets them, as data: the one owner of them.

A leaf (it imports no torch): the config schemas (`trainlab.config`) read their defaults here, so
validating a config (a search's driver, the CLI) loads no optimizer class. `trainlab.optim.registry`
builds the optimizers from the same table (`create` fills what a config leaves out from
`defaults`). `CLASS_DEFAULTS` writes down each class's own constructor defaults (torch.optim's,
which the classes keep: drop-in); tests/test_config.py checks they equal the classes' signatures,
argument for argument and in order, so the two cannot drift. `LECTURE` is the lecture's settings
where they differ from the class's (docs/optimizers.md lists each).
"""

from __future__ import annotations

from typing import Any

from trainlab import names

#: class name (trainlab.optim's) -> its constructor's keyword arguments besides params, with their
#: defaults, in the signature's order
CLASS_DEFAULTS: dict[str, dict[str, Any]] = {
    "SGD": {
        "lr": 1e-3,
        "momentum": 0,
        "dampening": 0,
        "weight_decay": 0,
        "nesterov": False,
        "maximize": False,
        "foreach": None,
        "differentiable": False,
        "fused": None,
    },
    "Adagrad": {
        "lr": 1e-2,
        "lr_decay": 0,
        "weight_decay": 0,
        "initial_accumulator_value": 0,
        "eps": 1e-10,
        "foreach": None,
        "maximize": False,
        "differentiable": False,
        "fused": None,
    },
    "RMSprop": {
        "lr": 1e-2,
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0,
        "momentum": 0,
        "centered": False,
        "capturable": False,
        "foreach": None,
        "maximize": False,
        "differentiable": False,
    },
    "Adam": {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0,
        "amsgrad": False,
        "foreach": None,
        "maximize": False,
        "capturable": False,
        "differentiable": False,
        "fused": None,
        "decoupled_weight_decay": False,
    },
    "AdamW": {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 1e-2,
        "amsgrad": False,
        "maximize": False,
        "foreach": None,
        "capturable": False,
        "differentiable": False,
        "fused": None,
    },
    "LBFGS": {
        "lr": 1,
        "max_iter": 20,
        "max_eval": None,
        "tolerance_grad": 1e-7,
        "tolerance_change": 1e-9,
        "history_size": 100,
        "line_search_fn": None,
    },
    "Newton": {
        "lr": 1.0,
        "damping": 0.0,
        "max_iter": 1,
        "tolerance_grad": 1e-7,
        "tolerance_change": 1e-9,
        "line_search_fn": "backtracking",
        "max_params": 4096,
    },
}

#: optim.name -> (its class's name, the lecture's settings where they differ from the class's own
#: defaults), with exactly the names of trainlab.names.OPTIMIZERS
LECTURE: dict[str, tuple[str, dict[str, Any]]] = names.covers(
    {
        "sgd": ("SGD", {"lr": 1e-2}),  # torch: 1e-3
        "momentum": ("SGD", {"lr": 1e-2, "momentum": 0.9}),  # the lecture's rho = 0.9; torch: 0
        "nesterov": ("SGD", {"lr": 1e-2, "momentum": 0.9, "nesterov": True}),
        "adagrad": ("Adagrad", {}),
        "rmsprop": ("RMSprop", {"lr": 1e-3}),  # the lecture's RMSProp lr; torch: 1e-2
        "adam": ("Adam", {}),
        "adamw": ("AdamW", {}),
        "lbfgs": ("LBFGS", {"line_search_fn": "strong_wolfe"}),  # torch: None (fixed step lr)
        "newton": ("Newton", {"damping": 1e-4}),  # keeps the Hessian invertible; class: 0
    },
    names.OPTIMIZERS,
    "trainlab.optimizer_defaults.LECTURE",
)

#: optimizers meant for full-batch, deterministic problems (one step sees the whole data set)
FULL_BATCH = frozenset(names.FULL_BATCH_OPTIMIZERS)


def defaults(name: str) -> dict[str, Any]:
    """Every argument of optimizer `name` (a key of `LECTURE`) with its default as a config gets
    it: the class's (torch's) defaults, with the lecture's settings on top."""
    cls, preset = LECTURE[name]
    return {**CLASS_DEFAULTS[cls], **preset}
