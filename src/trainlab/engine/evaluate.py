"""Batched evaluation: probabilities, loss and accuracy of a model (or the average of several
models' probabilities) on a split."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.data.augment import parse_augment
from trainlab.data.streaming import Split, TensorSplit, bounded_batch
from trainlab.data.tta import tta_predict

EVAL_BATCH = 1024  # examples per forward pass at evaluation (no gradients, so large is cheap)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


@torch.no_grad()
def predict_split(
    model: nn.Module, split: Split, batch_size: int = EVAL_BATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of a whole split: a tensor split in one call, a streamed one batch by
    batch (only the (N, classes) logits are kept)."""
    if isinstance(split, TensorSplit):
        return predict_logits(model, split.x, batch_size), split.y
    was_training = model.training
    model.eval()
    try:
        parts = [(model(x), y) for x, y in split.batches(bounded_batch(batch_size, split.shape))]
    finally:
        model.train(was_training)
    if not parts:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def evaluate_split(model: nn.Module, split: Split) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in [0, 1]) on a split, in memory or streamed."""
    return loss_and_accuracy(*predict_split(model, split))


def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    return predict_logits(model, x, batch_size).softmax(dim=1)


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    if len(y) == 0:
        return float("nan"), float("nan")
    loss = F.cross_entropy(logits.float(), y).item()
    return loss, (logits.argmax(1) == y).float().mean().item()


def accuracy_of_proba(proba: torch.Tensor, y: torch.Tensor) -> float:
    return (proba.argmax(1) == y).float().mean().item() if len(y) else float("nan")


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in [0, 1]) in evaluation mode."""
    return loss_and_accuracy(predict_logits(model, x), y)


def tta_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: str, augment: list, kind: str
) -> float:
    """Accuracy with test-time augmentation; ten_crop uses the training crop (data.augment)."""
    crop = (
        parse_augment(augment, kind, x.shape[1], tuple(x.shape[2:])).tta_crop() if augment else {}
    )
    return accuracy_of_proba(tta_predict(model, x, mode, **crop), y)


def tta_accuracy_split(
    model: nn.Module, split: Split, mode: str, augment: list, kind: str
) -> float:
    """tta_accuracy on a split; a streamed one batch by batch (weighted by batch size)."""
    if isinstance(split, TensorSplit):
        return tta_accuracy(model, split.x, split.y, mode, augment, kind)
    right = total = 0.0
    for x, y in split.batches(bounded_batch(EVAL_BATCH, split.shape)):
        right += tta_accuracy(model, x, y, mode, augment, kind) * len(y)
        total += len(y)
    return right / total if total else float("nan")


@torch.no_grad()
def average_proba_split(
    models: Sequence[nn.Module], split: Split, batch_size: int = EVAL_BATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the members' mean probabilities, labels) on a split (see average_proba)."""
    if isinstance(split, TensorSplit):
        return average_proba(models, split.x, batch_size), split.y
    if not models:
        raise ValueError("average_proba: no models")
    probas, y = [], None
    for model in models:
        logits, y = predict_split(model, split, batch_size)
        probas.append(logits.softmax(dim=1).double())
    return (torch.stack(probas).sum(0) / len(models)).float(), y


@torch.no_grad()
def average_proba(
    models: Sequence[nn.Module], x: torch.Tensor, batch_size: int = EVAL_BATCH
) -> torch.Tensor:
    """The mean of the members' softmax probabilities over the whole split, (N, classes).

    Each model predicts the split once in batches of `batch_size` (evaluation mode, no gradients);
    the sum is accumulated in float64 so the mean does not depend on the members' order."""
    if not models:
        raise ValueError("average_proba: no models")
    total: torch.Tensor | None = None
    for model in models:
        p = (
            predict_proba(model, x, batch_size).double()
            if len(x)
            else torch.zeros(0, 0, dtype=torch.float64)
        )
        total = p if total is None else total + p
    assert total is not None
    return (total / len(models)).float()
