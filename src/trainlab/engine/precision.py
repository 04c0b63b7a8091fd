"""train.precision: the mechanics of mixed precision, in one object the trainer calls at fixed
points. Weights, optimizer state and the loss stay float32; only the forward pass (and the loss)
runs under autocast. fp32 makes every call a plain pass-through.

- bf16: torch.autocast(device_type, dtype=torch.bfloat16) on CPU and CUDA; bfloat16 has float32's
  exponent range, so gradients need no scaling.
- fp16: torch.autocast(cuda, float16) with a torch.amp.GradScaler (the loss is multiplied by a
  scale so small gradients do not underflow; a step whose gradients hold inf/nan is skipped and
  the scale lowered). A skipped step still counts as a step (the schedule keeps its pace, as in
  PyTorch's AMP recipe) and is counted in `skipped`, so it is reported, never taken for
  divergence: the divergence guard watches the loss, which the scaler does not touch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from trainlab.errors import UserError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast for the forward pass, loss scaling for fp16, and the scaler's state for
    checkpoints. `name` is train.precision, `device` the resolved training device."""

    def __init__(self, name: str, device: torch.device, full_batch: bool = False) -> None:
        self.name, self.device = name, device
        if name == "fp16" and device.type != "cuda":
            raise UserError(
                f"train.precision: fp16 needs a CUDA device (its gradient scaler is CUDA's); "
                f"training runs on {device.type}: use bf16 or fp32"
            )
        if name != "fp32" and full_batch:
            raise UserError(
                f"train.precision: {name} works with minibatch optimizers; lbfgs and newton "
                "take full-batch steps in fp32: use train.precision fp32"
            )
        self.dtype = DTYPES.get(name)
        self.scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None
        self.skipped = 0  # fp16 steps skipped for inf/nan gradients since the last take_skipped()

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward pass and the loss run inside this (a no-op for fp32)."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            yield

    def backward(self, loss: torch.Tensor) -> None:
        """loss.backward(), through the scaler with fp16."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring fp16's scaled gradients back to their true size (before clipping them)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """optimizer.step(); with fp16 through the scaler. False when fp16 skipped the step for
        inf/nan gradients (the scaler lowers its scale, the weights stay)."""
        if self.scaler is None:
            optimizer.step()
            return True
        scale = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        stepped = self.scaler.get_scale() >= scale  # the scale drops only after a skipped step
        self.skipped += not stepped
        return stepped

    def take_skipped(self) -> int:
        """Skipped fp16 steps since the last call (for the epoch record); resets."""
        skipped, self.skipped = self.skipped, 0
        return skipped

    def state_dict(self) -> dict[str, Any]:
        """The fp16 scaler's scale and growth tracker (empty otherwise), for --resume."""
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
