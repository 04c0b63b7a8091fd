"""Checks that loaded data can be what the user meant, before any training.

A NaN in the inputs would otherwise look like a diverged run (and advice to lower the learning
rate), and labels with gaps or a single class train without complaint to meaningless numbers.
"""

from __future__ import annotations

import numpy as np

from trainlab.errors import UserError, excerpt, warn


def require_finite(x: np.ndarray, array: str, origin: str, field: str = "data.path") -> None:
    """Refuse inputs with NaN or inf, saying how many, in which array and where the first is."""
    if not np.issubdtype(x.dtype, np.floating):
        return  # integer arrays cannot hold NaN or inf
    bad = ~np.isfinite(x)
    count = int(bad.sum())
    if count == 0:
        return
    nan = int(np.isnan(x).sum())
    first = int(np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))[0])
    field = field if origin else "data"
    where = f"{array} of {origin}" if origin else array
    raise UserError(
        f"{field}: {count} of {x.size} input values in {where} are not finite ({nan} NaN, "
        f"{count - nan} inf; first in example {first}); remove or impute them before training"
    )


def count_classes(
    y_train: np.ndarray, y_held: list[np.ndarray], field: str, relabelled: bool
) -> int:
    """The number of model outputs, max label + 1, after refusing single-class training data
    and warning about labels with gaps or classes seen only in the held-out splits.

    Gaps are a warning, not an error: a fixed label space with absent classes is legitimate (a
    subset of a larger set), and relabelling silently would change the labels of predictions.
    """
    present_train = np.unique(y_train)
    if len(present_train) < 2:
        if relabelled:
            raise UserError("data.classes: keeps one class; a classifier needs two or more")
        raise UserError(
            f"{field}: every training example has label {int(present_train[0])}; a classifier "
            "needs two or more classes"
        )
    present = np.unique(np.concatenate([y_train, *y_held]))
    num_classes = int(present.max()) + 1
    if len(present) < num_classes:
        labels = ", ".join(str(c) for c in present[:8]) + (", ..." if len(present) > 8 else "")
        warn(
            f"{field}: labels run 0..{num_classes - 1} but only {len(present)} of these "
            f"{num_classes} classes occur ({labels}); the model gets {num_classes} outputs. "
            f"To train on the classes present only, set data.classes to them (relabelled "
            f"0..{len(present) - 1})"
        )
    held_only = np.setdiff1d(present, present_train)
    if len(held_only):
        warn(
            f"{field}: class(es) {excerpt(held_only.tolist())} occur in the validation or test "
            "split but not in the training split; the model cannot learn them"
        )
    return num_classes
