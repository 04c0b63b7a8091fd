"""Batched evaluation: probabilities, loss and accuracy of a model on a split."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EVAL_BATCH = 1024  # examples per forward pass at evaluation (no gradients, so large is cheap)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


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
    from trainlab.data.augment import parse_augment
    from trainlab.data.tta import tta_predict

    crop = (
        parse_augment(augment, kind, x.shape[1], tuple(x.shape[2:])).tta_crop() if augment else {}
    )
    return accuracy_of_proba(tta_predict(model, x, mode, **crop), y)
